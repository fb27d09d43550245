#!/usr/bin/node --preserve-symlinks-main
// A tiny PeerNet plugin in Node.js, without packages, written from
// docs/plugin-protocol.md alone. It serves:
//
//   js.echo   returns its arguments
//   js.peers  asks the node for its trusted peers (a callback) and returns
//             how many are connected, as text
//
// It stops when the node retires the channel, or on SIGTERM.
'use strict';
const net = require('net');
const path = require('path');

// §2: the magic cookie and the protocol version.
if (process.env.PEERNET_PLUGIN !== '8f2c61d7a4b94e0b9c5e3a17d06fb2e4c1a98d35e7b04f6a') {
  process.stderr.write('This is a PeerNet plugin: configure it in a peernet-host plugin block.\n');
  process.exit(1);
}
if (!(process.env.PLUGIN_PROTOCOL_VERSIONS || '').split(',').includes('2')) {
  process.stderr.write('The node does not speak plugin protocol version 2.\n');
  process.exit(1);
}

const CALL = 1, REPLY = 2, SEND = 3, CANCEL = 4, PING = 5, PONG = 6, GOAWAY = 7;
const OK = 0, NO_SUCH_HANDLE = 1, HANDLER_ERROR = 3, UNAVAILABLE = 5;
const ZERO = Buffer.alloc(32);

// §11: hclog JSON lines on stderr.
function log(level, message) {
  const stamp = new Date().toISOString().replace('Z', '000Z'); // six decimals
  process.stderr.write(JSON.stringify({ '@level': level, '@message': message, '@timestamp': stamp }) + '\n');
}

const channel = new net.Socket({ fd: 3, readable: true, writable: true });
let configured = false;
let nextId = 0n;
const pending = new Map(); // our call id (BigInt) -> function(status, body)
let running = 0; // the node's calls being handled
let retiring = false, retired = false, closed = false;

function write(type, fields, body) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + fields.length + body.length, 0);
  head[4] = type;
  channel.write(Buffer.concat([head, fields, body]));
}

function reply(id, status, body) {
  const f = Buffer.alloc(9);
  f.writeBigUInt64BE(id, 0);
  f[8] = status;
  write(REPLY, f, body);
}

// §7: a call to the node (key: the peer, or zero for the node itself).
function callNode(key, handle, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    if (retiring || closed || (retired && running === 0)) {
      reject(new Error('unavailable: channel closing'));
      return;
    }
    const id = ++nextId;
    const h = Buffer.from(handle);
    const f = Buffer.alloc(13 + h.length);
    f.writeBigUInt64BE(id, 0);
    f.writeUInt32BE(timeoutMs, 8);
    f[12] = h.length;
    h.copy(f, 13);
    pending.set(id, (status, body) => {
      if (status === OK) resolve(body);
      else reject(new Error('status ' + status + ': ' + body.toString()));
    });
    write(CALL, f, Buffer.concat([key, args]));
  });
}

// §10: retiring.
function checkRetired() {
  if (closed || !retired || running > 0 || pending.size > 0) return;
  if (!retiring) goaway();
  closed = true;
  channel.end(() => process.exit(0));
}

function goaway() {
  retiring = true;
  write(GOAWAY, Buffer.from([3]), Buffer.alloc(0));
}

async function serve(key, handle, args) {
  if (key.equals(ZERO)) {
    if (handle === 'peernet.describe') {
      return [OK, JSON.stringify({ name: 'node-example', version: '1.0.0', handles: ['js.echo', 'js.peers'], protocol: 2 })];
    }
    if (handle === 'peernet.configure') {
      const c = JSON.parse(args.toString());
      log('info', 'configured, callbacks ' + c.callbacks + ', script ' + path.basename(process.argv[1]));
      configured = true;
      return [OK, ''];
    }
  }
  if (!configured) return [UNAVAILABLE, 'not configured'];
  if (handle === 'js.echo') return [OK, args];
  if (handle === 'js.peers') {
    try {
      const peers = JSON.parse((await callNode(ZERO, 'peernet.peers', Buffer.alloc(0), 2000)).toString());
      return [OK, String(peers.filter((p) => p.connected).length)];
    } catch (e) {
      return [HANDLER_ERROR, 'js.peers: ' + e.message];
    }
  }
  return [NO_SUCH_HANDLE, 'no handle ' + handle];
}

async function onCall(id, key, handle, args) {
  running++;
  let [status, body] = await serve(key, handle, args);
  running--;
  if (id !== 0n && !closed) reply(id, status, Buffer.from(body));
  checkRetired();
}

// §4: reading whole messages.
let buf = Buffer.alloc(0);
channel.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  while (buf.length >= 4) {
    const len = buf.readUInt32BE(0);
    if (len === 0 || len > (64 << 20) + 301) fail('bad length ' + len);
    if (buf.length < 4 + len) break;
    const msg = buf.subarray(4, 4 + len);
    buf = buf.subarray(4 + len);
    handle(msg[0], msg.subarray(1));
  }
});

function handle(type, b) {
  switch (type) {
    case CALL: {
      const id = b.readBigUInt64BE(0), n = b[12];
      onCall(id, b.subarray(13 + n, 45 + n), b.subarray(13, 13 + n).toString(), b.subarray(45 + n));
      break;
    }
    case SEND: {
      const n = b[0];
      onCall(0n, b.subarray(1 + n, 33 + n), b.subarray(1, 1 + n).toString(), b.subarray(33 + n));
      break;
    }
    case REPLY: {
      const id = b.readBigUInt64BE(0), done = pending.get(id);
      if (id > nextId) fail('reply to a call never made');
      pending.delete(id);
      if (done) done(b[8], b.subarray(9));
      checkRetired();
      break;
    }
    case CANCEL: // the handlers here finish at once
    case PONG:
      break;
    case PING:
      write(PONG, b.subarray(0, 8), Buffer.alloc(0));
      break;
    case GOAWAY:
      if (b[0] !== 3) fail('goaway ' + b[0]);
      retired = true;
      checkRetired();
      break;
    default:
      fail('unknown message type ' + type);
  }
}

function fail(why) {
  log('error', 'call channel: ' + why);
  process.exit(1);
}

channel.on('end', () => process.exit(0));
channel.on('error', (e) => fail(e.message));
process.on('SIGTERM', () => {
  if (!retiring) goaway();
  setTimeout(() => process.exit(0), 3000).unref();
});

// §3: the handshake line; the address is unused.
process.stdout.write('1|2|unix|-|grpc|\n');

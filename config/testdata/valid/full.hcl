# Every block and attribute, none at its default.
node {
  name                      = "alpha"
  data_dir                  = "/var/lib/peernet/alpha"
  listen                    = "0.0.0.0:4040"
  log_level                 = "debug"
  log_format                = "json"
  call_timeout              = "7s"
  handshake_timeout         = "3s"
  ping_interval             = "15s"
  reconnect_min             = "250ms"
  reconnect_max             = "1m30s"
  max_message_size          = 1048576
  max_handshakes            = 32
  max_inflight_per_peer     = 512
  max_handshakes_per_source = 8
  max_conns_per_peer        = 2
  max_peer_memory           = 16777216
  write_timeout             = "20s"
  shutdown_grace            = "20s"
}

peer "beta" {
  id      = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
  address = "127.0.0.1:4041"
}

peer "gamma" {
  id      = "pn1culbogazdinryhi6d4qccirdeqssmjzifevcwlbnfyxtamjsgm2ka55sxm"
  address = "gamma.example.net:4040"
}

plugin "echo" {
  command      = "../bin/echo"
  args         = ["-v", "--mode=fast"]
  env          = { GREETING = "hi", EMPTY = "" }
  sha256       = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  config       = { dir = "./data/kv", sizes = [1, 2.5], nested = { on = true, none = null } }
  grace_period = "2s"

  restart {
    max_crashes = 3
    window      = "2m"
    backoff_min = "1s"
    backoff_max = "1m"
  }

  handle "echo" {
    allow          = ["beta", "pn1dqor4hzaeercgjbfeytsqkjkfmwc2lrpgaytemzugu3doobzhi5v7k2zlu", "beta"]
    max_concurrent = 8
    timeout        = "2s"
  }

  handle "echo.upper" {}
}

plugin "kv" {
  command = "./../bin/../bin/kv"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

  handle "kv.get" {
    allow = ["gamma"]
  }
}

discovery {
  mdns       = true
  interfaces = ["eth0", "wlan0"]
}

telemetry {
  metrics_listen = "127.0.0.1:9090"
}

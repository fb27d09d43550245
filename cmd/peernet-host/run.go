package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/daemon"
	"github.com/peernet/peernet/trust"
)

// runNode runs the node in the foreground until SIGINT or SIGTERM.
func runNode(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("run takes no arguments")
	}
	cfg, err := config.Load(env.configPath)
	if err != nil {
		return err
	}
	var out io.Writer = env.stderr
	if env.logFile != "" {
		lf, err := openLogFile(env.logFile)
		if err != nil {
			return err
		}
		defer lf.close()
		out = lf
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "peernet-host",
		Level:      cfg.Node.LogLevel,
		JSONFormat: cfg.Node.LogFormat == config.LogFormatJSON,
		Output:     out,
	})

	// Take the signals before starting, so none is lost. A stop signal
	// while the plugins start also cuts their start short.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	startCtx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	d, err := daemon.Start(startCtx, cfg, log)
	cancel()
	if d == nil {
		return err
	}
	if err != nil {
		// What happens next depends on the plugin and is logged with
		// its failure: a binary at fault waits for a corrected
		// configuration, a process that died is restarted.
		log.Error("some plugins did not start", "error", err)
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if lf, ok := out.(*logFile); ok {
				// After logrotate has moved the file away.
				if err := lf.reopen(); err != nil {
					log.Error("reopening the log file; still writing to the old one", "error", err)
				}
			}
			if sum, err := d.Reload(context.Background()); sum == nil {
				log.Error("reload refused; configuration unchanged", "error", err)
			} else if err != nil {
				log.Warn("reloaded, but some plugins did not start", "error", err)
			}
			continue
		}
		log.Info("stopping", "signal", sig.String())
		break
	}
	return d.Shutdown(context.Background())
}

func runFlags(fs *flag.FlagSet, env *cmdEnv) {
	fs.StringVar(&env.logFile, "log-file", "", "append the log to `file` instead of standard error; SIGHUP reopens it")
}

// logFile is the log's file, which SIGHUP reopens so that logrotate can
// move it away. It is safe for concurrent use.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// reopen opens the file at the path again, creating it (mode 0600: the
// log names peers and plugins) if it was moved away, and closes the old
// one.
func (l *logFile) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func initFlags(fs *flag.FlagSet, env *cmdEnv) {
	fs.StringVar(&env.initName, "name", "", "the node's `name` (default: the file's base name; for peernet.hcl, its directory's name)")
	fs.StringVar(&env.initListen, "listen", config.StarterListen, "the `address` to listen on; \":4040\" accepts peers on every interface")
	fs.BoolVar(&env.initMDNS, "mdns", false, "turn on mDNS discovery on the local network")
	fs.BoolVar(&env.initForce, "force", false, "overwrite an existing configuration file")
	fs.BoolVar(&env.initKeep, "keep-identity", false, "use the identity already in the data dir instead of refusing")
}

// initNode writes a starter configuration and creates the identity. It
// refuses a data dir that already holds an identity unless told to keep
// it: two configurations sharing one data dir would be one node.
func initNode(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("init takes no arguments")
	}
	name := env.initName
	if name == "" {
		name = defaultNodeName(env.configPath)
	}
	src := config.Starter(name, env.initListen, env.initMDNS)
	// The starter is checked as run will check it, before anything is
	// written: a bad -listen, or a name taken from a directory that is
	// not a valid node name.
	cfg, err := config.Parse(src, env.configPath)
	if err != nil {
		return usagef("the starter file would be invalid (choose with -name and -listen):\n%v", err)
	}
	key := filepath.Join(cfg.Node.DataDir, trust.KeyfileName)
	if _, err := os.Lstat(key); err == nil && !env.initKeep {
		owner := "a node"
		if id, err := trust.LoadIdentity(key); err == nil {
			owner = "node " + id.PeerID().String()
		}
		return fmt.Errorf("the data dir %s already holds the identity of %s; nothing was written.\n"+
			"A new node needs a data dir of its own: run init with -config in another directory.\n"+
			"To make %s a configuration of that same node, run init again with -keep-identity", cfg.Node.DataDir, owner, env.configPath)
	}
	if err := os.MkdirAll(filepath.Dir(env.configPath), 0o755); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if env.initForce {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(env.configPath, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; use -force to overwrite it", env.configPath)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(src); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	id, err := createIdentity(cfg.Node.DataDir)
	if err != nil {
		return err
	}
	mdns := "off"
	if cfg.Discovery.MDNS {
		mdns = "on"
	}
	fmt.Fprintf(env.stdout, "wrote %s: listening on %s, mDNS %s, data in %s\nnode %q is %s\n",
		env.configPath, cfg.Node.Listen, mdns, cfg.Node.DataDir, name, id)
	return nil
}

// defaultNodeName names a node after its configuration file, or after the
// file's directory when the file has the default name, which says nothing
// about the node: alpha.hcl and alpha/peernet.hcl are both "alpha".
func defaultNodeName(path string) string {
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	if base != defaultConfigName {
		return name
	}
	if abs, err := filepath.Abs(path); err == nil {
		if dir := filepath.Base(filepath.Dir(abs)); dir != string(filepath.Separator) && dir != "." {
			return dir
		}
	}
	return name
}

func createIdentity(dir string) (trust.PeerID, error) {
	lock, err := trust.LockDir(mkdir(dir))
	if err != nil {
		return trust.PeerID{}, err
	}
	defer lock.Close()
	id, _, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		return trust.PeerID{}, err
	}
	return id.PeerID(), nil
}

func mkdir(dir string) string {
	os.MkdirAll(dir, 0o700)
	return dir
}

// printID prints the node's PeerID, creating the identity if the node has
// never run.
func printID(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("id takes no arguments")
	}
	loc, err := config.Locate(env.configPath)
	if err != nil {
		return err
	}
	id, err := trust.LoadIdentity(filepath.Join(loc.DataDir, trust.KeyfileName))
	var peer trust.PeerID
	switch {
	case err == nil:
		peer = id.PeerID()
	case errors.Is(err, fs.ErrNotExist):
		if peer, err = createIdentity(loc.DataDir); err != nil {
			return err
		}
	default:
		return err
	}
	if env.json {
		return env.printJSON(map[string]string{"id": peer.String(), "name": loc.Name})
	}
	fmt.Fprintln(env.stdout, peer)
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
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
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "peernet-host",
		Level:      cfg.Node.LogLevel,
		JSONFormat: cfg.Node.LogFormat == config.LogFormatJSON,
		Output:     env.stderr,
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
		log.Error("some plugins did not start; the supervisor keeps trying", "error", err)
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
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

func initFlags(fs *flag.FlagSet, env *cmdEnv) {
	fs.StringVar(&env.initName, "name", "", "the node's name (default: the configuration file's base name)")
	fs.BoolVar(&env.initForce, "force", false, "overwrite an existing configuration file")
}

// initNode writes a starter configuration and creates the identity.
func initNode(env *cmdEnv, args []string) error {
	if len(args) != 0 {
		return usagef("init takes no arguments")
	}
	name := env.initName
	if name == "" {
		base := filepath.Base(env.configPath)
		name = base[:len(base)-len(filepath.Ext(base))]
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
	if _, err := f.Write(config.Starter(name)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	loc, err := config.Locate(env.configPath)
	if err != nil {
		return err
	}
	id, err := createIdentity(loc.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wrote %s\nnode %q is %s\n", env.configPath, name, id)
	return nil
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

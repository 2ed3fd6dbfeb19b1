package main

import (
	"context"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/backends"
	"github.com/fencedhq/fenced/pkg/config"
	"github.com/fencedhq/fenced/pkg/daemon"
)

// reloader rereads the run config on SIGHUP and hands the policy and the
// webhooks to the daemon (docs/operations.md, "Reload"). A file that does
// not load, a policy that does not validate, or a webhook secret that
// cannot be read keeps the running config, and says why. Settings that
// need a restart are compared with those the replica started with: a
// change is logged and audited, and the running ones are kept.
type reloader struct {
	path  string
	mode  string         // --mode, applied to every policy loaded
	start *config.Config // the config the replica started with
	d     *daemon.Daemon
}

// watchHUP registers for SIGHUP at once (so that a HUP during start-up does
// not end the process) and, once ready is called with the daemon, reloads
// on each one until ctx ends. stop unregisters.
func watchHUP(ctx context.Context, r *reloader) (ready func(*daemon.Daemon), stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ready = func(d *daemon.Daemon) {
		r.d = d
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					rctx, cancel := context.WithTimeout(ctx, time.Minute)
					_ = r.reload(rctx)
					cancel()
				}
			}
		}()
	}
	return ready, func() { signal.Stop(hup) }
}

// reload loads the file again and swaps what can be swapped.
func (r *reloader) reload(ctx context.Context) error {
	obs.Fields{Component: "config", Action: "reload"}.Log(logger.Info(), 0, "started").Str("file", r.path).Msg("SIGHUP: reloading the config")
	cfg, err := config.Load(r.path)
	if err != nil {
		r.d.ReloadFailed(ctx, r.path, err)
		return err
	}
	p, err := loadPolicy(cfg.Policy, r.mode)
	if err == nil {
		// groups: needs a restart: the overrides must fit the running groups
		err = p.CheckGroups(r.start.GroupNames())
	}
	if err != nil {
		r.d.ReloadFailed(ctx, r.path, err)
		return err
	}
	eps, err := backends.Webhooks(cfg, os.Getenv)
	if err != nil {
		r.d.ReloadFailed(ctx, r.path, err)
		return err
	}
	_, err = r.d.Reload(ctx, daemon.Reload{Policy: p, Webhooks: eps, Source: r.path, Kept: restartNeeded(r.start, cfg)})
	return err // the daemon logged and audited it
}

// reloadable are the sections of the run config a reload applies.
var reloadable = map[string]bool{"policy": true, "webhooks": true}

// restartNeeded names the sections of the run config (by their YAML key)
// that differ between the running config and a new one and that a reload
// does not apply: every section but policy: and webhooks:, new ones
// included. Files these sections point to (API tokens and certificates, BMC
// and etcd credentials, the audit key) are read at start only; their
// contents are not compared.
func restartNeeded(old, cur *config.Config) []string {
	var out []string
	ov, cv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem()
	for i := 0; i < ov.NumField(); i++ {
		f := ov.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" || reloadable[name] {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), cv.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

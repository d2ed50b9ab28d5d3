package director

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"google.golang.org/grpc/credentials"

	"github.com/saru-lb/saru/filter"
	"github.com/saru-lb/saru/filter/sharedmac"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/config"
)

// notify tells systemd the director's state when it runs under it
// (Type=notify, $NOTIFY_SOCKET); elsewhere it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify", "state", state, "err", err)
	}
}

// watchdogInterval is how often to ping systemd's watchdog: half its
// timeout (WatchdogSec= in the unit), or 0 when the unit enables none.
func watchdogInterval(log *slog.Logger) time.Duration {
	timeout, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog settings unreadable; not pinging it", "err", err)
		return 0
	}
	return timeout / 2
}

func tlsCreds(cfg config.Config) (server, client credentials.TransportCredentials, err error) {
	cert, pool, err := cfg.ReadTLS()
	if err != nil {
		return nil, nil, err
	}
	st := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	ct := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	if pool != nil {
		// Reads stay open; a verified client certificate authorises drain
		// and undrain.
		st.ClientAuth, st.ClientCAs = tls.VerifyClientCertIfGiven, pool
		ct.RootCAs = pool
	}
	return credentials.NewTLS(st), credentials.NewTLS(ct), nil
}

// setupInterface gives the interface the shared MAC (when configured) and
// the VIPs, and reports kernel settings that break a shared-MAC director.
// The returned function removes the VIPs.
func setupInterface(ctx context.Context, cfg config.Config, log *slog.Logger) (func(), error) {
	h, err := sharedmac.Dial()
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	if cfg.SharedMAC != nil {
		if err := h.SetMAC(ctx, cfg.Interface, cfg.SharedMAC); err != nil {
			h.Close()
			return nil, fmt.Errorf("shared_mac: %w", err)
		}
	}
	var vips []netip.Addr
	var prefixes []netip.Prefix
	for _, s := range cfg.Services {
		if !slices.Contains(vips, s.VIP) {
			vips = append(vips, s.VIP)
			prefixes = append(prefixes, netip.PrefixFrom(s.VIP, s.VIP.BitLen()))
		}
	}
	if err := h.AddVIPs(ctx, cfg.Interface, prefixes); err != nil {
		h.Close()
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	problems, err := h.Check(ctx, cfg.Interface, vips)
	if err != nil {
		log.Warn("check interface settings", "interface", cfg.Interface, "err", err)
	}
	for _, p := range problems {
		lvl := slog.LevelWarn
		if p.Severity == sharedmac.Fatal {
			lvl = slog.LevelError
		}
		log.Log(ctx, lvl, "interface setting", "interface", cfg.Interface, "problem", p.String())
	}
	log.Info("interface ready", "interface", cfg.Interface, "vips", len(prefixes), "shared_mac", cfg.SharedMAC.String())
	return func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.RemoveVIPs(rctx, cfg.Interface, prefixes); err != nil {
			log.Error("remove VIPs", "err", err)
		}
		h.Close()
	}, nil
}

// FilterConfig is the filter configuration the director's services give.
func FilterConfig(cfg config.Config) filter.Config {
	fc := filter.Config{Buckets: cfg.Buckets, Seed: cfg.Seed}
	for _, s := range cfg.Services {
		fc.Services = append(fc.Services, filter.Service{VIP: s.VIP, Protocols: s.Protocols, Port: s.Port, Sense: s.Sense})
	}
	if len(cfg.NATRealServers) > 0 {
		fc.NAT = &filter.NATConfig{RealServers: cfg.NATRealServers}
	}
	return fc
}

// nftFilter adapts package filter to node.Filter.
type nftFilter struct {
	f       *filter.Filter
	buckets int
}

func openFilter(ctx context.Context, cfg config.Config, log *slog.Logger) (*nftFilter, error) {
	f, err := filter.Open(ctx, FilterConfig(cfg), filter.WithLogger(log.With("component", "filter")))
	if err != nil {
		return nil, fmt.Errorf("install filter: %w", err)
	}
	return &nftFilter{f: f, buckets: cfg.Buckets}, nil
}

func (a *nftFilter) Apply(ctx context.Context, owned []uint32) error {
	s, err := filter.NewBucketSet(a.buckets, owned...)
	if err != nil {
		return err
	}
	return a.f.Apply(ctx, s)
}

func (a *nftFilter) Counters(ctx context.Context) ([]*sarupb.RuleCounter, error) {
	rs, err := a.f.Counters(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*sarupb.RuleCounter, 0, len(rs))
	for _, r := range rs {
		out = append(out, &sarupb.RuleCounter{Chain: r.Chain, Handle: r.Handle, Description: r.Description, Packets: r.Packets, Bytes: r.Bytes})
	}
	return out, nil
}

// nullFilter installs nothing (Options.NoFilter).
type nullFilter struct{}

func (nullFilter) Apply(context.Context, []uint32) error { return nil }
func (nullFilter) Counters(context.Context) ([]*sarupb.RuleCounter, error) {
	return nil, errors.New("no filter installed (-no-filter)")
}

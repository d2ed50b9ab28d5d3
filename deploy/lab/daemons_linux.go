package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// binaries are the programs the lab runs.
type binaries struct {
	saru, syncd, saructl, grpcurl string
}

// ErrMissing names a component the lab needs and could not find.
type ErrMissing struct {
	What, Why string
}

func (e *ErrMissing) Error() string { return "missing " + e.What + ": " + e.Why }

func findBinary(dir, name string) (string, error) {
	if dir != "" {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &ErrMissing{What: name, Why: "not in " + orStr(dir, "$PATH") + " nor $PATH (make build)"}
	}
	return p, nil
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// saruNice is saru's scheduling priority, as deploy/saru/saru.service
// sets it: its failure detector must answer probes while the data plane
// keeps the CPUs busy, or a busy director is declared dead.
const saruNice = -10

// proc is a daemon running in a namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// startProc starts argv in the namespace. A nonzero nice is the daemon's
// scheduling priority (every thread of it: the child inherits the forking
// thread's).
func startProc(ns, name, logPath string, nice int, argv ...string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group: a terminal's Ctrl-C reaches sarulab, which tears
	// down in order, not the daemons directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := startNice(cmd, nice); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		lf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// debugf prints a timestamped line when SARULAB_DEBUG is set.
func debugf(w io.Writer, format string, args ...any) {
	if os.Getenv("SARULAB_DEBUG") != "" {
		fmt.Fprintf(w, "  [%s] "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

// startNice starts cmd from an OS thread whose nice value is nice for the
// fork, so the child and every thread it makes inherit it.
func startNice(cmd *exec.Cmd, nice int) error {
	if nice == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice); err != nil {
		return fmt.Errorf("nice %d: %w", nice, err)
	}
	defer syscall.Setpriority(syscall.PRIO_PROCESS, 0, 0)
	return cmd.Start()
}

func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to d, then kills.
func (p *proc) term(d time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("%s did not stop within %v after SIGTERM; killed", p.name, d)
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	if p == nil {
		return ""
	}
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// prepare finds the binaries and writes the cluster's shared secrets.
func (l *Lab) prepare() error {
	if l.bins.saru != "" {
		return nil
	}
	var errs []error
	var err error
	if l.bins.saru, err = findBinary(l.opts.BinDir, "saru"); err != nil {
		errs = append(errs, err)
	}
	if !l.opts.NoSync {
		if l.bins.syncd, err = findBinary(l.opts.BinDir, "syncd"); err != nil {
			errs = append(errs, err)
		}
	}
	if l.bins.saructl, err = findBinary(l.opts.BinDir, "saructl"); err != nil {
		errs = append(errs, err)
	}
	l.bins.grpcurl, _ = findBinary(l.opts.BinDir, "grpcurl")
	if len(errs) > 0 {
		l.bins.saru = ""
		return errors.Join(errs...)
	}
	return l.writeSecrets()
}

// writeSecrets writes the token and syncd's key file, private (the
// daemons refuse key files others may read).
func (l *Lab) writeSecrets() error {
	l.token = randHex(16)
	files := map[string]string{
		"token": l.token + "\n",
		// syncd's cluster key file: "<id> <hex secret>" lines.
		"sync.key": "1 " + randHex(32) + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(l.work, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) seeds(except *Director) []string {
	var s []string
	for _, d := range l.Directors {
		if d != except {
			s = append(s, netip.AddrPortFrom(d.Mgmt, gossipPort).String())
		}
	}
	return s
}

// saruConfig is the generated configuration of a director's saru.
func (l *Lab) saruConfig(d *Director, joinDelay time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node:\n  id: %s\n  name: %s\n  weight: 1\n", d.ID, d.ID)
	fmt.Fprintf(&b, "interface: lan0\nshared_mac: %q\n", lanMAC)
	fmt.Fprintf(&b, "services:\n")
	for _, port := range []int{HTTPPort, StreamPort} {
		fmt.Fprintf(&b, "  - vip: %s\n    protocol: tcp\n    port: %d\n    sense: src-port\n", VIP, port)
	}
	if l.opts.Mode == ModeNAT {
		// Only the owner of a client's bucket forwards a real server's reply.
		fmt.Fprintf(&b, "nat:\n  real_servers: [%q]\n", netip.PrefixFrom(realGateway, 24).Masked())
	}
	fmt.Fprintf(&b, "buckets: %d\nhash_seed: \"0x5a7a0001\"\n", l.opts.Buckets)
	fmt.Fprintf(&b, "grpc:\n  listen: %q\n  token_file: %s\n", d.SaruAddr(), filepath.Join(l.work, "token"))
	fmt.Fprintf(&b, "gossip:\n  bind: %q\n  seeds: [%s]\n", netip.AddrPortFrom(d.Mgmt, gossipPort), quoteList(l.seeds(d)))
	if l.opts.ProbeInterval > 0 {
		fmt.Fprintf(&b, "  probe_interval: %s\n  probe_timeout: %s\n  suspicion_mult: %d\n", l.opts.ProbeInterval, l.opts.ProbeTimeout, l.opts.SuspicionMult)
	}
	fmt.Fprintf(&b, "join_delay: %s\n", joinDelay)
	fmt.Fprintf(&b, "drain:\n  confirm_timeout: 10s\n  timeout: 20s\n")
	if !l.opts.NoSync {
		fmt.Fprintf(&b, "syncd:\n  address: %q\n", d.SyncdAddr())
	}
	fmt.Fprintf(&b, "state_dir: %s\n", filepath.Join(l.work, d.ID+"-state"))
	fmt.Fprintf(&b, "log_level: info\n")
	return b.String()
}

// syncdConfig is the generated configuration of a director's syncd.
func (l *Lab) syncdConfig(d *Director) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node_id: %s\napi_listen: %q\nkey_file: %s\n", d.ID, d.SyncdAddr(), filepath.Join(l.work, "sync.key"))
	fmt.Fprintf(&b, "state_dir: %s\n", filepath.Join(l.work, d.ID+"-syncd-state"))
	fmt.Fprintf(&b, "multicast:\n  group: %q\n  port: %d\n  interface: mgmt0\n  ttl: 1\n", syncGroup, syncPort)
	var peers []string
	for _, o := range l.Directors {
		if o != d {
			peers = append(peers, o.SyncdAddr())
		}
	}
	fmt.Fprintf(&b, "snapshot:\n  peers: [%s]\n  wait: 3s\n", quoteList(peers))
	fmt.Fprintf(&b, "timing:\n  refresh: 5s\n")
	fmt.Fprintf(&b, "backend: ipvs\nlog_level: info\n")
	return b.String()
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// StartDaemons starts syncd and saru on the director with generated
// configurations.
func (l *Lab) StartDaemons(ctx context.Context, d *Director, joinDelay time.Duration) error {
	if err := l.prepare(); err != nil {
		return err
	}
	debugf(l.opts.Out, "%s: configure IPVS", d.ID)
	if err := l.configureIPVS(ctx, d); err != nil {
		return err
	}
	if err := l.applyLoss(ctx, d); err != nil {
		return err
	}
	if !l.opts.NoSync {
		debugf(l.opts.Out, "%s: start syncd", d.ID)
		if err := l.startSyncd(ctx, d); err != nil {
			return err
		}
	}
	debugf(l.opts.Out, "%s: start saru", d.ID)
	if err := l.startSaru(ctx, d, joinDelay); err != nil {
		return err
	}
	debugf(l.opts.Out, "%s: saru serving", d.ID)
	return l.forward(d, true)
}

// forward turns a NAT director's IP forwarding on or off. saru serves only
// once its filter is installed, and removes the filter when it stops; the
// lab forwards only in between, as deploy/saru/README.md asks of a NAT
// director.
func (l *Lab) forward(d *Director, on bool) error {
	if l.opts.Mode != ModeNAT {
		return nil
	}
	v := "0"
	if on {
		v = "1"
	}
	return sysctl(d.NS, map[string]string{"net.ipv4.ip_forward": v})
}

func (l *Lab) startSyncd(ctx context.Context, d *Director) error {
	sc := filepath.Join(l.work, d.ID+"-syncd.yaml")
	if err := os.WriteFile(sc, []byte(l.syncdConfig(d)), 0o644); err != nil {
		return err
	}
	var err error
	if d.syncd, err = startProc(d.NS, d.ID+" syncd", filepath.Join(l.work, d.ID+"-syncd.log"), 0, l.bins.syncd, "-config", sc); err != nil {
		return err
	}
	if err := waitTCP(ctx, d.NS, d.SyncdAddr(), 30*time.Second); err != nil {
		return fmt.Errorf("%s syncd not serving on %s: %w\n%s", d.ID, d.SyncdAddr(), err, d.syncd.tail(15))
	}
	return nil
}

func (l *Lab) startSaru(ctx context.Context, d *Director, joinDelay time.Duration) error {
	cc := filepath.Join(l.work, d.ID+"-saru.yaml")
	if err := os.WriteFile(cc, []byte(l.saruConfig(d, joinDelay)), 0o644); err != nil {
		return err
	}
	var err error
	if d.saru, err = startProc(d.NS, d.ID+" saru", filepath.Join(l.work, d.ID+"-saru.log"), saruNice, l.bins.saru, "-config", cc); err != nil {
		return err
	}
	if err := waitTCP(ctx, d.NS, d.SaruAddr(), 30*time.Second); err != nil {
		return fmt.Errorf("%s saru not serving on %s: %w\n%s", d.ID, d.SaruAddr(), err, d.saru.tail(15))
	}
	return nil
}

// StopDaemons stops saru (SIGTERM: it drains, leaves and removes the VIP
// and its filter) and then syncd, and turns a NAT director's forwarding off.
func (l *Lab) StopDaemons(ctx context.Context, d *Director, grace time.Duration) error {
	err1 := d.saru.term(grace)
	err2 := d.syncd.term(5 * time.Second)
	return errors.Join(err1, err2, l.forward(d, false))
}

// Crash kills the director's daemons with SIGKILL and unplugs its links,
// as a power cut would.
func (l *Lab) Crash(ctx context.Context, d *Director) error {
	if err := l.Unplug(ctx, d); err != nil {
		return err
	}
	d.saru.kill()
	d.syncd.kill()
	return nil
}

// Running reports whether the director's saru runs.
func (d *Director) Running() bool { return d.saru.running() }

// waitTCP waits until something accepts TCP connections on addr inside ns.
func waitTCP(ctx context.Context, ns, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		c, err := dialIn(ctx, ns, addr, 2*time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// logLines is how many lines of each daemon's log a failure shows
// (SARULAB_LOG_LINES, default 12).
func logLines() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("SARULAB_LOG_LINES"), &n); err != nil || n <= 0 {
		return 12
	}
	return n
}

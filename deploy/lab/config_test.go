package lab

import (
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/services"
	"github.com/saru-lb/saru/syncd/daemon"
)

func testLab(t *testing.T, o Options) *Lab {
	t.Helper()
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{opts: o, work: t.TempDir(), prefix: "slt"}
	for i := 0; i < o.Directors; i++ {
		l.Directors = append(l.Directors, &Director{Index: i, ID: "dir" + string(rune('1'+i)), Mgmt: mgmtAddr(i)})
	}
	for i := 0; i < o.Servers; i++ {
		l.Servers = append(l.Servers, &Server{Addr: serverAddr(o.Mode, i)})
	}
	return l
}

// The generated configurations must pass the daemons' own checks, the
// environment's included: the secrets the lab writes are private and well
// formed. The interfaces (lan0, mgmt0) exist only in a director's
// namespace, so the test leaves them out of the environment check.
func TestGeneratedConfigsAreValid(t *testing.T) {
	for _, o := range []Options{
		{Mode: ModeDR},
		{Mode: ModeNAT, Directors: 4, ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 400 * time.Millisecond, SuspicionMult: 4},
		{Mode: ModeDR, NoSync: true},
	} {
		l := testLab(t, o)
		if err := l.writeSecrets(); err != nil {
			t.Fatal(err)
		}
		for _, d := range l.Directors {
			raw, err := config.Parse([]byte(l.saruConfig(d, 30*time.Second)))
			if err != nil {
				t.Fatalf("%s saru config: %v", d.ID, err)
			}
			c, err := config.For(raw)
			if err != nil {
				t.Fatalf("%s saru config: %v", d.ID, err)
			}
			if err := c.CheckEnvironment(config.EnvOptions{NoInterface: true}); err != nil {
				t.Fatalf("%s saru environment: %v", d.ID, err)
			}
			if c.ID != d.ID || c.Buckets != 1024 || len(c.Services) != 2 || len(c.Seeds) != len(l.Directors)-1 {
				t.Errorf("%s saru config: id %s, %d buckets, %d services, seeds %v", d.ID, c.ID, c.Buckets, len(c.Services), c.Seeds)
			}
			if (c.SyncdAddress == "") != o.NoSync {
				t.Errorf("%s: syncd address %q with NoSync %v", d.ID, c.SyncdAddress, o.NoSync)
			}
			if o.ProbeInterval > 0 && (c.ProbeInterval != o.ProbeInterval || c.SuspicionMult != o.SuspicionMult) {
				t.Errorf("%s: gossip timings %v x%d, want %v x%d", d.ID, c.ProbeInterval, c.SuspicionMult, o.ProbeInterval, o.SuspicionMult)
			}
			sc, err := daemon.ParseConfig([]byte(l.syncdConfig(d)))
			if err != nil {
				t.Fatalf("%s syncd config: %v", d.ID, err)
			}
			sc.Transport.Interface = ""
			if err := sc.CheckEnvironment(); err != nil {
				t.Fatalf("%s syncd environment: %v", d.ID, err)
			}
			if sc.NodeID != d.ID || sc.Backend != "ipvs" || len(sc.SnapshotPeers) != len(l.Directors)-1 {
				t.Errorf("%s syncd config: node %s, backend %s, snapshot peers %v", d.ID, sc.NodeID, sc.Backend, sc.SnapshotPeers)
			}
		}
		es, err := services.Desired("services", l.serviceSpecs())
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 || len(es[0].Destinations) != l.opts.Servers {
			t.Errorf("%d services, %d real servers; want 2, %d", len(es), len(es[0].Destinations), l.opts.Servers)
		}
	}
}

func TestConsoleFilter(t *testing.T) {
	var b strings.Builder
	f := &consoleFilter{w: &b}
	f.Write([]byte("c\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16)\nBooting from ROM..\n== scen"))
	f.Write([]byte("ario spread\n{\"scenario\":\"spread\"}\n[   42.1] reboot: Power down\ntail"))
	f.flush()
	if got, want := b.String(), "== scenario spread\n{\"scenario\":\"spread\"}\ntail"; got != want {
		t.Errorf("filtered console = %q, want %q", got, want)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"nat", "dr"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("tun"); err == nil || !strings.Contains(err.Error(), `"tun"`) {
		t.Errorf("ParseMode(tun) error %v, want one naming the value", err)
	}
	o := Options{Directors: 9}
	if err := o.defaults(); err == nil || !strings.Contains(err.Error(), "directors") {
		t.Errorf("9 directors: error %v, want one naming directors", err)
	}
}

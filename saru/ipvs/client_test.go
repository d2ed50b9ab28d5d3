package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// fakeIPVS serves the IPVS family from an in-memory service list, at the
// message level: requests are decoded with the same attribute layout the
// kernel uses, and replies encoded likewise.
type fakeIPVS struct {
	services []Service
	dests    map[ServiceID][]Destination
	daemons  []SyncDaemon
	requests []uint8
}

const fakeFamilyID = 0x20

func (f *fakeIPVS) client(t *testing.T) *Client {
	t.Helper()
	conn := genltest.Dial(genltest.ServeFamily(genetlink.Family{ID: fakeFamilyID, Name: familyName, Version: familyVersion}, f.serve))
	c := &Client{c: conn, family: fakeFamilyID}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fakeIPVS) serve(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
	if greq.Header.Command == 0 && len(greq.Data) == 0 {
		return nil, nil // a read with no request behind it
	}
	f.requests = append(f.requests, greq.Header.Command)
	ad, err := netlink.NewAttributeDecoder(greq.Data)
	if err != nil {
		return nil, err
	}
	var svc *Service
	var dest *Destination
	var daemon *SyncDaemon
	for ad.Next() {
		switch ad.Type() {
		case cmdAttrService:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				s, err := decodeService(nad)
				svc = &s
				return err
			})
		case cmdAttrDest:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				d, err := decodeDest(nad, FamilyIPv4)
				dest = &d
				return err
			})
		case cmdAttrDaemon:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				d, err := decodeDaemon(nad)
				daemon = &d
				return err
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	find := func(id ServiceID) int {
		for i, s := range f.services {
			if s.Key() == id.Key() {
				return i
			}
		}
		return -1
	}
	nested := func(typ uint16, fn func(ae *netlink.AttributeEncoder)) genetlink.Message {
		ae := netlink.NewAttributeEncoder()
		ae.Nested(typ, func(nae *netlink.AttributeEncoder) error { fn(nae); return nil })
		b, _ := ae.Encode()
		return genetlink.Message{Header: genetlink.Header{Command: greq.Header.Command, Version: familyVersion}, Data: b}
	}
	ack := []genetlink.Message{{Header: genetlink.Header{Command: greq.Header.Command, Version: familyVersion}}}
	switch greq.Header.Command {
	case cmdNewService:
		if find(svc.ServiceID) >= 0 {
			return nil, genltest.Error(int(unix.EEXIST))
		}
		f.services = append(f.services, *svc)
		return ack, nil
	case cmdGetService:
		var out []genetlink.Message
		for _, s := range f.services {
			out = append(out, nested(cmdAttrService, func(ae *netlink.AttributeEncoder) {
				encodeService(ae, s)
				ae.Nested(svcAttrStats64, func(nae *netlink.AttributeEncoder) error {
					nae.Uint64(statsAttrConns, s.Stats.Connections)
					return nil
				})
			}))
		}
		return out, nil
	case cmdNewDest:
		if find(svc.ServiceID) < 0 {
			return nil, genltest.Error(int(unix.ESRCH))
		}
		if f.dests == nil {
			f.dests = map[ServiceID][]Destination{}
		}
		f.dests[svc.Key()] = append(f.dests[svc.Key()], *dest)
		return ack, nil
	case cmdGetDest:
		var out []genetlink.Message
		for _, d := range f.dests[svc.Key()] {
			out = append(out, nested(cmdAttrDest, func(ae *netlink.AttributeEncoder) { encodeDest(ae, d) }))
		}
		return out, nil
	case cmdNewDaemon:
		f.daemons = append(f.daemons, *daemon)
		return ack, nil
	case cmdGetDaemon:
		var out []genetlink.Message
		for _, d := range f.daemons {
			out = append(out, nested(cmdAttrDaemon, func(ae *netlink.AttributeEncoder) { encodeDaemon(ae, d) }))
		}
		return out, nil
	}
	return nil, genltest.Error(int(unix.EOPNOTSUPP))
}

func TestClientAgainstMessageLevelFake(t *testing.T) {
	f := &fakeIPVS{}
	c := f.client(t)
	ctx := context.Background()
	web := Service{ServiceID: ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("192.0.2.1:80")}, Scheduler: "rr", Timeout: 60}
	if err := c.NewService(ctx, web); err != nil {
		t.Fatal(err)
	}
	err := c.NewService(ctx, web)
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "add service tcp 192.0.2.1:80") {
		t.Errorf("duplicate: %v", err)
	}
	rs := Destination{Address: netip.MustParseAddrPort("198.51.100.1:8080"), Forward: ForwardMasq, Weight: 2}
	if err := c.NewDestination(ctx, web.ServiceID, rs); err != nil {
		t.Fatal(err)
	}
	other := ServiceID{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("192.0.2.1:53")}
	err = c.NewDestination(ctx, other, rs)
	if !errors.Is(err, unix.ESRCH) || !strings.Contains(err.Error(), "destination 198.51.100.1:8080 of service udp 192.0.2.1:53") {
		t.Errorf("destination of a missing service: %v", err)
	}
	f.services[0].Stats.Connections = 42
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Service.Scheduler != "rr" || list[0].Service.Flags&FlagPersistent == 0 ||
		list[0].Service.Stats.Connections != 42 || len(list[0].Destinations) != 1 || list[0].Destinations[0] != rs {
		t.Errorf("list %+v", list)
	}
	// Bad input never reaches the kernel.
	n := len(f.requests)
	if err := c.NewService(ctx, Service{ServiceID: web.ServiceID, Scheduler: "bogus"}); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("unknown scheduler: %v", err)
	}
	if err := c.NewDestination(ctx, web.ServiceID, Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80")}); err == nil {
		t.Error("IPv6 masq destination of an IPv4 service accepted")
	}
	if err := c.StartDaemon(ctx, SyncDaemon{State: DaemonMaster}); err == nil || !strings.Contains(err.Error(), "interface") {
		t.Errorf("daemon without interface: %v", err)
	}
	if len(f.requests) != n {
		t.Errorf("invalid input sent %d requests to the kernel", len(f.requests)-n)
	}
	d := SyncDaemon{State: DaemonBackup, Interface: "sync0", SyncID: 4, Group: netip.MustParseAddr("239.9.9.9"), Port: 8849, TTL: 1, MaxLen: 1000}
	if err := c.StartDaemon(ctx, d); err != nil {
		t.Fatal(err)
	}
	ds, err := c.Daemons(ctx)
	if err != nil || len(ds) != 1 || ds[0] != d {
		t.Errorf("daemons %+v, %v", ds, err)
	}
	if err := c.Flush(ctx); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("unsupported command error %v", err)
	}
}

func TestClientHonoursContext(t *testing.T) {
	c := (&fakeIPVS{}).client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Services(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Services(ctx); err != nil {
		t.Errorf("live context: %v", err)
	}
}

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// Config configures a Client.
type Config struct {
	// NetNS is a file descriptor of the network namespace to act in; 0 is the
	// caller's namespace.
	NetNS int
}

// Client talks to the kernel's IPVS over generic netlink. It is safe for
// concurrent use.
type Client struct {
	c      *genetlink.Conn
	family uint16
}

// Dial opens a generic netlink socket and resolves the IPVS family. It fails
// when the kernel has no IPVS (the ip_vs module is not loaded).
func Dial(cfg Config) (*Client, error) {
	c, err := genetlink.Dial(&netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("ipvs: dial generic netlink: %w", err)
	}
	f, err := c.GetFamily(familyName)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ipvs: resolve generic netlink family %q (is ip_vs loaded?): %w", familyName, err)
	}
	return &Client{c: c, family: f.ID}, nil
}

// Close closes the socket.
func (c *Client) Close() error { return c.c.Close() }

// execute sends one request and returns the replies, honouring ctx's
// deadline and cancellation.
func (c *Client) execute(ctx context.Context, cmd uint8, flags netlink.HeaderFlags, attrs func(ae *netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ae := netlink.NewAttributeEncoder()
	if attrs != nil {
		attrs(ae)
	}
	data, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	// A socket without deadline support (a test double) just blocks.
	if c.c.SetDeadline(dl) == nil {
		stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	msgs, err := c.c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: familyVersion},
		Data:   data,
	}, c.family, flags)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return msgs, unwrapOpError(err)
}

// unwrapOpError keeps the kernel's errno reachable with errors.Is while
// dropping the netlink library's generic "netlink receive:" prefix.
func unwrapOpError(err error) error {
	var oe *netlink.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

const (
	doFlags   = netlink.Request | netlink.Acknowledge
	dumpFlags = netlink.Request | netlink.Dump
)

// Info returns the IPVS version and connection table size.
func (c *Client) Info(ctx context.Context) (Info, error) {
	msgs, err := c.execute(ctx, cmdGetInfo, netlink.Request, nil)
	if err != nil {
		return Info{}, fmt.Errorf("ipvs: get info: %w", err)
	}
	if len(msgs) == 0 {
		return Info{}, errors.New("ipvs: get info: empty reply")
	}
	ad, err := netlink.NewAttributeDecoder(msgs[0].Data)
	if err != nil {
		return Info{}, fmt.Errorf("ipvs: get info: %w", err)
	}
	return decodeInfo(ad)
}

// Services lists every virtual service with its counters.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	msgs, err := c.execute(ctx, cmdGetService, dumpFlags, nil)
	if err != nil {
		return nil, fmt.Errorf("ipvs: list services: %w", err)
	}
	out := make([]Service, 0, len(msgs))
	for _, m := range msgs {
		s, err := parseServiceMessage(m.Data)
		if err != nil {
			return nil, fmt.Errorf("ipvs: list services: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseServiceMessage decodes the attributes of a GET_SERVICE reply.
func parseServiceMessage(b []byte) (Service, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return Service{}, err
	}
	var s Service
	var derr error
	found := false
	for ad.Next() {
		if ad.Type() == cmdAttrService {
			found = true
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				s, derr = decodeService(nad)
				return derr
			})
		}
	}
	if err := ad.Err(); err != nil {
		return Service{}, err
	}
	if !found {
		return Service{}, errors.New("reply without a service")
	}
	return s, nil
}

// parseDestMessage decodes the attributes of a GET_DEST reply.
func parseDestMessage(b []byte, svcFamily Family) (Destination, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return Destination{}, err
	}
	var d Destination
	found := false
	for ad.Next() {
		if ad.Type() == cmdAttrDest {
			found = true
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				var derr error
				d, derr = decodeDest(nad, svcFamily)
				return derr
			})
		}
	}
	if err := ad.Err(); err != nil {
		return Destination{}, err
	}
	if !found {
		return Destination{}, errors.New("reply without a destination")
	}
	return d, nil
}

// Service returns one virtual service.
func (c *Client) Service(ctx context.Context, id ServiceID) (Service, error) {
	if err := id.Validate(); err != nil {
		return Service{}, fmt.Errorf("ipvs: %w", err)
	}
	msgs, err := c.execute(ctx, cmdGetService, netlink.Request, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrService, func(nae *netlink.AttributeEncoder) error { encodeServiceID(nae, id); return nil })
	})
	if err != nil {
		return Service{}, fmt.Errorf("ipvs: get service %s: %w", id, err)
	}
	if len(msgs) == 0 {
		return Service{}, fmt.Errorf("ipvs: get service %s: empty reply", id)
	}
	s, err := parseServiceMessage(msgs[0].Data)
	if err != nil {
		return Service{}, fmt.Errorf("ipvs: get service %s: %w", id, err)
	}
	return s, nil
}

// Destinations lists the destinations of a service with their counters.
func (c *Client) Destinations(ctx context.Context, id ServiceID) ([]Destination, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("ipvs: %w", err)
	}
	msgs, err := c.execute(ctx, cmdGetDest, dumpFlags, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrService, func(nae *netlink.AttributeEncoder) error { encodeServiceID(nae, id); return nil })
	})
	if err != nil {
		return nil, fmt.Errorf("ipvs: list destinations of %s: %w", id, err)
	}
	out := make([]Destination, 0, len(msgs))
	for _, m := range msgs {
		d, err := parseDestMessage(m.Data, id.family())
		if err != nil {
			return nil, fmt.Errorf("ipvs: list destinations of %s: %w", id, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// List returns every service with its destinations, in the kernel's order.
func (c *Client) List(ctx context.Context) ([]Entry, error) {
	svcs, err := c.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(svcs))
	for _, s := range svcs {
		ds, err := c.Destinations(ctx, s.ServiceID)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Service: s, Destinations: ds})
	}
	return out, nil
}

func (c *Client) serviceCmd(ctx context.Context, cmd uint8, verb string, s Service, full bool) error {
	var err error
	if full {
		err = s.Validate()
	} else {
		err = s.ServiceID.Validate()
	}
	if err != nil {
		return fmt.Errorf("ipvs: %s: %w", verb, err)
	}
	_, err = c.execute(ctx, cmd, doFlags, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrService, func(nae *netlink.AttributeEncoder) error {
			if full {
				encodeService(nae, s)
			} else {
				encodeServiceID(nae, s.ServiceID)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("ipvs: %s service %s: %w", verb, s.ServiceID, err)
	}
	return nil
}

// NewService adds a virtual service (ipvsadm -A).
func (c *Client) NewService(ctx context.Context, s Service) error {
	return c.serviceCmd(ctx, cmdNewService, "add", s, true)
}

// UpdateService changes a service's scheduler, flags and persistence
// (ipvsadm -E).
func (c *Client) UpdateService(ctx context.Context, s Service) error {
	return c.serviceCmd(ctx, cmdSetService, "update", s, true)
}

// DeleteService removes a service and its destinations (ipvsadm -D).
func (c *Client) DeleteService(ctx context.Context, id ServiceID) error {
	return c.serviceCmd(ctx, cmdDelService, "delete", Service{ServiceID: id}, false)
}

func (c *Client) destCmd(ctx context.Context, cmd uint8, verb string, id ServiceID, d Destination, full bool) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("ipvs: %s destination: %w", verb, err)
	}
	if full {
		if err := d.Validate(id); err != nil {
			return fmt.Errorf("ipvs: %s: %w", verb, err)
		}
	} else if !d.Address.Addr().IsValid() {
		return fmt.Errorf("ipvs: %s destination of service %s: no address", verb, id)
	}
	_, err := c.execute(ctx, cmd, doFlags, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrService, func(nae *netlink.AttributeEncoder) error { encodeServiceID(nae, id); return nil })
		ae.Nested(cmdAttrDest, func(nae *netlink.AttributeEncoder) error {
			if full {
				encodeDest(nae, d)
			} else {
				encodeDestID(nae, d)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("ipvs: %s destination %s of service %s: %w", verb, d.Address, id, err)
	}
	return nil
}

// NewDestination adds a real server to a service (ipvsadm -a).
func (c *Client) NewDestination(ctx context.Context, id ServiceID, d Destination) error {
	return c.destCmd(ctx, cmdNewDest, "add", id, d, true)
}

// UpdateDestination changes a real server's forwarding, weight and
// thresholds (ipvsadm -e).
func (c *Client) UpdateDestination(ctx context.Context, id ServiceID, d Destination) error {
	return c.destCmd(ctx, cmdSetDest, "update", id, d, true)
}

// DeleteDestination removes a real server from a service (ipvsadm -d).
func (c *Client) DeleteDestination(ctx context.Context, id ServiceID, d Destination) error {
	return c.destCmd(ctx, cmdDelDest, "delete", id, d, false)
}

// StartDaemon starts a kernel sync daemon (ipvsadm --start-daemon).
func (c *Client) StartDaemon(ctx context.Context, d SyncDaemon) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("ipvs: start %w", err)
	}
	_, err := c.execute(ctx, cmdNewDaemon, doFlags, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrDaemon, func(nae *netlink.AttributeEncoder) error { encodeDaemon(nae, d); return nil })
	})
	if err != nil {
		return fmt.Errorf("ipvs: start sync daemon %s on %s: %w", d.State, d.Interface, err)
	}
	return nil
}

// StopDaemon stops the kernel sync daemon in the given role
// (ipvsadm --stop-daemon).
func (c *Client) StopDaemon(ctx context.Context, state DaemonState) error {
	if state != DaemonMaster && state != DaemonBackup {
		return fmt.Errorf("ipvs: stop sync daemon: state %s is not master or backup", state)
	}
	_, err := c.execute(ctx, cmdDelDaemon, doFlags, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
			nae.Uint32(daemonAttrState, uint32(state))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("ipvs: stop sync daemon %s: %w", state, err)
	}
	return nil
}

// Daemons lists the running sync daemons (ipvsadm --list --daemon).
func (c *Client) Daemons(ctx context.Context) ([]SyncDaemon, error) {
	msgs, err := c.execute(ctx, cmdGetDaemon, dumpFlags, nil)
	if err != nil {
		return nil, fmt.Errorf("ipvs: list sync daemons: %w", err)
	}
	var out []SyncDaemon
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return nil, fmt.Errorf("ipvs: list sync daemons: %w", err)
		}
		for ad.Next() {
			if ad.Type() != cmdAttrDaemon {
				continue
			}
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				d, err := decodeDaemon(nad)
				if err == nil {
					out = append(out, d)
				}
				return err
			})
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("ipvs: list sync daemons: %w", err)
		}
	}
	return out, nil
}

// Timeouts returns the TCP, TCP FIN and UDP connection timeouts.
func (c *Client) Timeouts(ctx context.Context) (Timeouts, error) {
	msgs, err := c.execute(ctx, cmdGetConfig, netlink.Request, nil)
	if err != nil {
		return Timeouts{}, fmt.Errorf("ipvs: get timeouts: %w", err)
	}
	if len(msgs) == 0 {
		return Timeouts{}, errors.New("ipvs: get timeouts: empty reply")
	}
	ad, err := netlink.NewAttributeDecoder(msgs[0].Data)
	if err != nil {
		return Timeouts{}, fmt.Errorf("ipvs: get timeouts: %w", err)
	}
	t, err := decodeTimeouts(ad)
	if err != nil {
		return Timeouts{}, fmt.Errorf("ipvs: get timeouts: %w", err)
	}
	return t, nil
}

// SetTimeouts sets the connection timeouts (ipvsadm --set); a zero field is
// left unchanged. Timeouts are whole seconds.
func (c *Client) SetTimeouts(ctx context.Context, t Timeouts) error {
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"tcp", t.TCP}, {"tcpfin", t.TCPFin}, {"udp", t.UDP}} {
		if v.d < 0 || v.d%time.Second != 0 || v.d/time.Second > 1<<31-1 {
			return fmt.Errorf("ipvs: set timeouts: %s timeout %v is not a whole number of seconds in range", v.name, v.d)
		}
	}
	_, err := c.execute(ctx, cmdSetConfig, doFlags, func(ae *netlink.AttributeEncoder) {
		if t.TCP != 0 {
			ae.Uint32(cmdAttrTimeoutTCP, uint32(t.TCP/time.Second))
		}
		if t.TCPFin != 0 {
			ae.Uint32(cmdAttrTimeoutTCPFin, uint32(t.TCPFin/time.Second))
		}
		if t.UDP != 0 {
			ae.Uint32(cmdAttrTimeoutUDP, uint32(t.UDP/time.Second))
		}
	})
	if err != nil {
		return fmt.Errorf("ipvs: set timeouts: %w", err)
	}
	return nil
}

// Flush removes every service (ipvsadm -C).
func (c *Client) Flush(ctx context.Context) error {
	if _, err := c.execute(ctx, cmdFlush, doFlags, nil); err != nil {
		return fmt.Errorf("ipvs: flush: %w", err)
	}
	return nil
}

// Command saructl inspects and steers a saru director cluster over the
// saru.v1.Cluster gRPC API (and the local syncd's syncd.v1.Sync API).
//
//	saructl status | members | buckets | counters | services
//	saructl who-owns 198.51.100.7:40001 --dst 192.0.2.10:80 [--protocol tcp]
//	saructl drain dir2 --token-file /etc/saru/token
//	saructl undrain dir2 --token-file /etc/saru/token
//	saructl conns | sync-stats --syncd-addr localhost:7401
//
// Output is a readable table; -o json prints the API's JSON.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/saru/node"
)

type cli struct {
	addr, syncdAddr, output, tokenFile string
	tlsCA, tlsCert, tlsKey             string
	timeout                            time.Duration
	out                                io.Writer
}

func main() {
	c := &cli{out: os.Stdout}
	if err := c.root().Execute(); err != nil {
		if s, ok := status.FromError(err); ok {
			fmt.Fprintf(os.Stderr, "saructl: %s: %s\n", s.Code(), s.Message())
		} else {
			fmt.Fprintln(os.Stderr, "saructl:", err)
		}
		os.Exit(1)
	}
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{Use: "saructl", Short: "Inspect and steer a saru director cluster", SilenceUsage: true, SilenceErrors: true}
	pf := root.PersistentFlags()
	pf.StringVar(&c.addr, "addr", "localhost:7400", "director's gRPC address")
	pf.StringVar(&c.syncdAddr, "syncd-addr", "localhost:7401", "syncd's gRPC address (conns, sync-stats)")
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token for drain and undrain")
	pf.StringVar(&c.tlsCA, "tls-ca", "", "CA certificate (PEM) to verify the director with; enables TLS")
	pf.StringVar(&c.tlsCert, "tls-cert", "", "client certificate (PEM) for mutual TLS; authorises drain and undrain")
	pf.StringVar(&c.tlsKey, "tls-key", "", "client certificate key (PEM)")
	pf.DurationVar(&c.timeout, "timeout", 5*time.Second, "request timeout (drain and undrain wait up to 2m unless set)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if c.output != "table" && c.output != "json" {
			return fmt.Errorf("-o %q: want table or json", c.output)
		}
		return nil
	}

	var proto, dst string
	who := &cobra.Command{Use: "who-owns CLIENT_ADDR:PORT", Short: "Which bucket and director a client's packet to a VIP falls to", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.whoOwns(cmd.Context(), args[0], dst, proto) }}
	who.Flags().StringVar(&proto, "protocol", "tcp", "tcp, udp or icmp")
	who.Flags().StringVar(&dst, "dst", "", "virtual service VIP:PORT (required)")

	var origin string
	var limit uint32
	conns := &cobra.Command{Use: "conns", Short: "Connections in the local syncd's table", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return c.conns(cmd.Context(), origin, limit) }}
	conns.Flags().StringVar(&origin, "origin", "", "only connections from this director")
	conns.Flags().Uint32Var(&limit, "limit", 100, "at most this many")

	var ro RenderOptions
	var stats, rate bool
	svcs := &cobra.Command{Use: "services", Short: "IPVS virtual services on the director, as ipvsadm -L -n shows them", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case stats && rate:
				return errors.New("--stats and --rate: choose one")
			case stats:
				ro.Format = FormatStats
			case rate:
				ro.Format = FormatRate
			}
			return c.services(cmd.Context(), ro)
		}}
	svcs.Flags().BoolVar(&stats, "stats", false, "counters, as ipvsadm -L -n --stats")
	svcs.Flags().BoolVar(&rate, "rate", false, "rates, as ipvsadm -L -n --rate")
	svcs.Flags().BoolVar(&ro.Exact, "exact", false, "counters in full, as ipvsadm --exact")

	root.AddCommand(
		&cobra.Command{Use: "status", Short: "This director's view of the cluster", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return c.status(cmd.Context()) }},
		&cobra.Command{Use: "members", Short: "Directors, their state and buckets", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return c.members(cmd.Context()) }},
		&cobra.Command{Use: "buckets", Short: "The assignment: bucket ranges, owners, standbys", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return c.buckets(cmd.Context()) }},
		who,
		&cobra.Command{Use: "drain NODE", Short: "Move a director's buckets away once peers hold its connections", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error { return c.drain(cmd, a[0], true) }},
		&cobra.Command{Use: "undrain NODE", Short: "Return a drained director to service", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error { return c.drain(cmd, a[0], false) }},
		&cobra.Command{Use: "counters", Short: "The director's nftables rule counters", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return c.counters(cmd.Context()) }},
		svcs,
		conns,
		&cobra.Command{Use: "sync-stats", Short: "The local syncd's per-peer sync statistics", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return c.syncStats(cmd.Context()) }},
	)
	return root
}

func (c *cli) creds() (credentials.TransportCredentials, error) {
	if c.tlsCA == "" && c.tlsCert == "" {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", c.tlsCA)
		}
	}
	if c.tlsCert != "" || c.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

func (c *cli) dial(addr string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if addr == c.addr {
		var err error
		if creds, err = c.creds(); err != nil {
			return nil, err
		}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	return conn, nil
}

func (c *cli) cluster(ctx context.Context, timeout time.Duration) (sarupb.ClusterClient, context.Context, func(), error) {
	conn, err := c.dial(c.addr)
	if err != nil {
		return nil, nil, nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return sarupb.NewClusterClient(conn), ctx, func() { cancel(); conn.Close() }, nil
}

func (c *cli) json(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.out, string(b))
	return err
}

func (c *cli) table(header string, rows [][]string) error {
	w := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
}

func state(s sarupb.MemberState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "MEMBER_STATE_"))
}

func (c *cli) status(ctx context.Context) error {
	cl, ctx, done, err := c.cluster(ctx, c.timeout)
	if err != nil {
		return err
	}
	defer done()
	s, err := cl.GetStatus(ctx, &sarupb.GetStatusRequest{})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(s)
	}
	return c.table("FIELD\tVALUE", [][]string{
		{"node", s.NodeId}, {"state", state(s.State)}, {"leader", s.LeaderId},
		{"epoch", fmt.Sprint(s.Epoch)}, {"applied epoch", fmt.Sprint(s.AppliedEpoch)},
		{"live members", fmt.Sprint(s.LiveMembers)}, {"owned buckets", fmt.Sprintf("%d of %d", s.OwnedBuckets, s.BucketCount)},
		{"hash seed", fmt.Sprintf("%#x", s.HashSeed)}, {"sync ready", fmt.Sprint(s.SyncReady)},
		{"uptime", (time.Duration(s.UptimeSeconds) * time.Second).String()}, {"version", s.Version},
	})
}

func (c *cli) members(ctx context.Context) error {
	cl, ctx, done, err := c.cluster(ctx, c.timeout)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.ListMembers(ctx, &sarupb.ListMembersRequest{})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	var rows [][]string
	for _, m := range r.Members {
		leader := ""
		if m.Leader {
			leader = "*"
		}
		rows = append(rows, []string{m.Id, leader, state(m.State), fmt.Sprint(m.Weight), fmt.Sprint(m.OwnedBuckets), fmt.Sprint(m.Epoch), fmt.Sprint(m.AppliedEpoch), m.GrpcAddress, m.GossipAddress})
	}
	return c.table("ID\tLEADER\tSTATE\tWEIGHT\tBUCKETS\tEPOCH\tAPPLIED\tGRPC\tGOSSIP", rows)
}

func (c *cli) buckets(ctx context.Context) error {
	cl, ctx, done, err := c.cluster(ctx, c.timeout)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.GetAssignment(ctx, &sarupb.GetAssignmentRequest{})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	a := r.Assignment
	fmt.Fprintf(c.out, "epoch %d, %d buckets\n", a.Epoch, a.BucketCount)
	var rows [][]string
	for _, g := range a.Ranges {
		rows = append(rows, []string{fmt.Sprintf("%d-%d", g.First, g.Last), fmt.Sprint(g.Last - g.First + 1), or(g.Owner, "-"), or(g.Standby, "-")})
	}
	return c.table("BUCKETS\tCOUNT\tOWNER\tSTANDBY", rows)
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (c *cli) whoOwns(ctx context.Context, src, dst, proto string) error {
	req := &sarupb.WhoOwnsRequest{Protocol: proto}
	if proto == "icmp" {
		a, err := netip.ParseAddr(src)
		if err != nil {
			return fmt.Errorf("client address %q: %w", src, err)
		}
		req.SrcAddr = a.String()
	} else {
		ap, err := netip.ParseAddrPort(src)
		if err != nil {
			return fmt.Errorf("client %q: want ADDR:PORT: %w", src, err)
		}
		req.SrcAddr, req.SrcPort = ap.Addr().String(), uint32(ap.Port())
	}
	if dst == "" {
		return fmt.Errorf("--dst VIP:PORT is required")
	}
	if host, port, err := net.SplitHostPort(dst); err == nil {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("--dst %q: port: %w", dst, err)
		}
		req.DstAddr, req.DstPort = host, uint32(p)
	} else {
		req.DstAddr = dst
	}
	cl, ctx, done, err := c.cluster(ctx, c.timeout)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.WhoOwns(ctx, req)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	return c.table("BUCKET\tOWNER\tSTANDBY\tEPOCH\tSENSE\tSERVICE", [][]string{{fmt.Sprint(r.Bucket), r.Owner, or(r.Standby, "-"), fmt.Sprint(r.Epoch),
		node.SenseFromProto(r.Sense).String(), r.Service}})
}

func (c *cli) drain(cmd *cobra.Command, id string, drain bool) error {
	timeout := c.timeout
	if !cmd.Flags().Changed("timeout") {
		timeout = 2 * time.Minute
	}
	cl, ctx, done, err := c.cluster(cmd.Context(), timeout)
	if err != nil {
		return err
	}
	defer done()
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	var epoch uint64
	var st sarupb.MemberState
	var msg proto.Message
	if drain {
		r, err := cl.Drain(ctx, &sarupb.DrainRequest{NodeId: id})
		if err != nil {
			return err
		}
		epoch, st, msg = r.Epoch, r.State, r
	} else {
		r, err := cl.Undrain(ctx, &sarupb.UndrainRequest{NodeId: id})
		if err != nil {
			return err
		}
		epoch, st, msg = r.Epoch, r.State, r
	}
	if c.output == "json" {
		return c.json(msg)
	}
	fmt.Fprintf(c.out, "%s %s at epoch %d\n", id, state(st), epoch)
	return nil
}

func (c *cli) counters(ctx context.Context) error {
	cl, ctx, done, err := c.cluster(ctx, c.timeout)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.GetFilterCounters(ctx, &sarupb.GetFilterCountersRequest{})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	fmt.Fprintf(c.out, "table %s\n", r.Table)
	var rows [][]string
	for _, x := range r.Rules {
		rows = append(rows, []string{fmt.Sprint(x.Packets), fmt.Sprint(x.Bytes), x.Chain, fmt.Sprint(x.Handle), x.Description})
	}
	return c.table("PKTS\tBYTES\tCHAIN\tHANDLE\tRULE", rows)
}

func (c *cli) services(ctx context.Context, ro RenderOptions) error {
	cl, ctx, done, err := c.cluster(ctx, c.timeout)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.ListServices(ctx, &sarupb.ListServicesRequest{})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	_, err = io.WriteString(c.out, Render(r.Services, ro))
	return err
}

func (c *cli) syncd(ctx context.Context) (syncdpb.SyncClient, context.Context, func(), error) {
	conn, err := c.dial(c.syncdAddr)
	if err != nil {
		return nil, nil, nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return syncdpb.NewSyncClient(conn), ctx, func() { cancel(); conn.Close() }, nil
}

func (c *cli) conns(ctx context.Context, origin string, limit uint32) error {
	cl, ctx, done, err := c.syncd(ctx)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.ListConnections(ctx, &syncdpb.ListConnectionsRequest{Origin: origin, PageSize: limit})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	ap := func(b []byte, port uint32) string {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return "?"
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
	}
	var rows [][]string
	for _, x := range r.Connections {
		rows = append(rows, []string{fmt.Sprint(x.Protocol), ap(x.ClientAddress, x.ClientPort), ap(x.VirtualAddress, x.VirtualPort),
			ap(x.DestinationAddress, x.DestinationPort), fmt.Sprint(x.State), fmt.Sprint(x.TimeoutSeconds), x.Origin})
	}
	return c.table("PROTO\tCLIENT\tVIRTUAL\tREAL\tSTATE\tTIMEOUT\tORIGIN", rows)
}

func (c *cli) syncStats(ctx context.Context) error {
	cl, ctx, done, err := c.syncd(ctx)
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.GetStats(ctx, &syncdpb.GetStatsRequest{})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(r)
	}
	var rows [][]string
	for _, p := range r.Peers {
		rows = append(rows, []string{p.PeerId, fmt.Sprint(p.Entries), fmt.Sprint(p.ReceivedPackets), fmt.Sprint(p.LostPackets),
			fmt.Sprint(p.Missing), fmt.Sprint(p.RetransmittedPackets), fmt.Sprint(p.RejectedAuth), fmt.Sprint(p.RejectedReplay),
			fmt.Sprintf("%.3f", p.LagSeconds), fmt.Sprint(p.CaughtUp)})
	}
	return c.table("PEER\tENTRIES\tRECEIVED\tLOST\tMISSING\tRETRANSMITTED\tBAD-AUTH\tREPLAYED\tLAG-S\tCAUGHT-UP", rows)
}

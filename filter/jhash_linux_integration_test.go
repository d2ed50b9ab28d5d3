package filter

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/filter/bucket"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite bucket/testdata/kernel_jhash_vectors.json from the kernel")

// vectorsFile belongs to package bucket, whose tests check Of and Jhash
// against it.
const vectorsFile = "bucket/testdata/kernel_jhash_vectors.json"

// jhashVector is one bucket the kernel computed for a real packet:
// nftables `jhash <key> mod Buckets seed Seed offset 0` over Key, the
// register content (address, or address then big-endian port padded to 4
// bytes).
type jhashVector struct {
	Sense   string `json:"sense"` // src-addr or src-addr+src-port
	Addr    string `json:"addr"`
	Port    uint16 `json:"port,omitempty"`
	Key     string `json:"key_hex"`
	Seed    uint32 `json:"seed"`
	Buckets uint32 `json:"buckets"`
	Bucket  uint32 `json:"bucket"`
}

type vectorFile struct {
	Comment string        `json:"comment"`
	Vectors []jhashVector `json:"vectors"`
}

// probe is one packet source and the hash parameters to apply to it.
type hashProbe struct {
	withPort bool
	v6       bool
	buckets  uint32
	seed     uint32
}

func (p hashProbe) setName() string {
	return fmt.Sprintf("h%t%t%d", p.v6, p.withPort, p.buckets)
}

// TestIntegrationKernelJhash sends UDP packets from many source addresses and
// ports through a chain that records, per packet, the source and the bucket
// nftables' jhash computed (a dynset adding "saddr . [sport .] hash" to a
// set). It checks the Go jhash against every kernel result, and the kernel
// against the committed vectors.
func TestIntegrationKernelJhash(t *testing.T) {
	requireRoot(t)
	cl := newNetNS(t, "jc")
	pr := newNetNS(t, "jp")
	cl.VethTo(t, "eth0", pr, "eth0")
	pr.Sysctl(t, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.accept_dad=0")
	cl.Sysctl(t, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	pr.IPBatch(t, []string{"addr add 10.98.0.1/8 dev eth0", "addr add fd00:98::1/16 dev eth0 nodad", "link set eth0 up"})

	rng := rand.New(rand.NewPCG(7, 11))
	var srcs4, srcs6 []netip.Addr
	lines := []string{"link set eth0 up"}
	for range 24 {
		a4 := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(2 + rng.IntN(250))})
		var b16 [16]byte
		b16[0], b16[1] = 0xfd, 0x00
		for i := 2; i < 16; i++ {
			b16[i] = byte(rng.IntN(256))
		}
		a6 := netip.AddrFrom16(b16)
		if slices.Contains(srcs4, a4) || a4 == netip.MustParseAddr("10.98.0.1") {
			continue
		}
		srcs4, srcs6 = append(srcs4, a4), append(srcs6, a6)
		lines = append(lines, fmt.Sprintf("addr add %s/32 dev eth0", a4), fmt.Sprintf("addr add %s/128 dev eth0 nodad", a6))
	}
	cl.IPBatch(t, lines)
	cl.IPBatch(t, []string{"route add 10.0.0.0/8 dev eth0", "route add fd00::/16 dev eth0"})

	params := []struct{ buckets, seed uint32 }{{16, 1}, {4096, 0xdeadbeef}, {65536, 0x5a5a1234}}
	var probes []hashProbe
	for _, v6 := range []bool{false, true} {
		for _, wp := range []bool{false, true} {
			for _, p := range params {
				probes = append(probes, hashProbe{withPort: wp, v6: v6, buckets: p.buckets, seed: p.seed})
			}
		}
	}
	conn, sets := installHashRecorder(t, pr, probes)

	// Send from every source, two ports each.
	sent := 0
	err := cl.Do(func() error {
		for i := range srcs4 {
			for _, src := range []netip.Addr{srcs4[i], srcs6[i]} {
				dst := netip.MustParseAddr("10.98.0.1")
				if src.Is6() {
					dst = netip.MustParseAddr("fd00:98::1")
				}
				for _, port := range []uint16{uint16(1024 + rng.IntN(60000)), uint16(1 + i)} {
					c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, port)),
						net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
					if err != nil {
						return err
					}
					_, err = c.Write([]byte("probe"))
					c.Close()
					if err != nil {
						return err
					}
					sent++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var got []jhashVector
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range probes {
		want := sent / 2 // packets of this family
		if !p.withPort {
			want /= 2 // two ports per address record once
		}
		var elems []nftables.SetElement
		for {
			elems, err = conn.GetSetElements(sets[p])
			if err != nil {
				t.Fatalf("read set %s: %v", p.setName(), err)
			}
			if len(elems) >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(elems) != want {
			t.Fatalf("set %s: kernel recorded %d distinct keys, want %d", p.setName(), len(elems), want)
		}
		for _, e := range elems {
			v := decodeRecord(t, p, e.Key)
			got = append(got, v)
		}
	}
	mismatch := 0
	for _, v := range got {
		addr := netip.MustParseAddr(v.Addr)
		s := bucket.SrcAddr
		if v.Sense == bucket.SrcAddrPort.String() {
			s = bucket.SrcAddrPort
		}
		want := bucket.Of(s, int(v.Buckets), v.Seed, netip.AddrPortFrom(addr, v.Port), netip.AddrPort{})
		if want != v.Bucket {
			mismatch++
			t.Errorf("kernel put %s %s:%d (B=%d seed=%#x) in bucket %d, Go jhash says %d", v.Sense, v.Addr, v.Port, v.Buckets, v.Seed, v.Bucket, want)
		}
	}
	t.Logf("%d kernel-computed buckets, %d disagree with the Go jhash", len(got), mismatch)
	slices.SortFunc(got, func(a, b jhashVector) int {
		return cmpVectors(a, b)
	})

	if *updateVectors {
		b, err := json.MarshalIndent(vectorFile{
			Comment: "Buckets computed by the Linux kernel (nftables jhash ... mod buckets seed S offset 0) for real packets; " +
				"regenerate with go test ./filter -run TestIntegrationKernelJhash -update-vectors",
			Vectors: got,
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var committed vectorFile
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (generate with -update-vectors)", err)
	}
	if err := json.Unmarshal(b, &committed); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(committed.Vectors, got) {
		t.Errorf("kernel buckets differ from %s (%d committed, %d observed)", vectorsFile, len(committed.Vectors), len(got))
	}
}

func cmpVectors(a, b jhashVector) int {
	for _, c := range []int{cmpStr(a.Sense, b.Sense), int(a.Buckets) - int(b.Buckets), cmpStr(a.Key, b.Key)} {
		if c != 0 {
			return c
		}
	}
	return 0
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decodeRecord splits a recorded element "saddr . [sport .] hash".
func decodeRecord(t *testing.T, p hashProbe, key []byte) jhashVector {
	n := 4
	if p.v6 {
		n = 16
	}
	addr, _ := netip.AddrFromSlice(key[:n])
	v := jhashVector{Sense: bucket.SrcAddr.String(), Addr: addr.String(), Seed: p.seed, Buckets: p.buckets}
	hk := key[:n]
	if p.withPort {
		v.Sense = bucket.SrcAddrPort.String()
		v.Port = binary.BigEndian.Uint16(key[n:])
		hk = key[:n+4]
	}
	v.Key = hex.EncodeToString(hk)
	v.Bucket = binary.NativeEndian.Uint32(key[len(hk):])
	if len(key) != len(hk)+4 {
		t.Fatalf("set %s: element of %d bytes", p.setName(), len(key))
	}
	return v
}

// installHashRecorder adds table inet saruhash to ns: per probe a dynamic set
// and a rule adding "saddr . [sport .] jhash(...)" for UDP to port 9.
func installHashRecorder(t *testing.T, ns *netNS, probes []hashProbe) (*nftables.Conn, map[hashProbe]*nftables.Set) {
	conn, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	tab := conn.AddTable(&nftables.Table{Name: "saruhash", Family: nftables.TableFamilyINet})
	ch := conn.AddChain(&nftables.Chain{Name: "pre", Table: tab, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	sets := map[hashProbe]*nftables.Set{}
	for i, p := range probes {
		alen := uint32(4)
		fam := byte(unix.NFPROTO_IPV4)
		if p.v6 {
			alen, fam = 16, unix.NFPROTO_IPV6
		}
		hlen := alen
		if p.withPort {
			hlen += 4
		}
		s := &nftables.Set{Table: tab, Name: p.setName(), ID: uint32(100 + i), Dynamic: true,
			KeyType: nftables.SetDatatype{Name: "record", Bytes: hlen + 4}}
		if err := conn.AddSet(s, nil); err != nil {
			t.Fatal(err)
		}
		sets[p] = s
		exprs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 9}},
			addrPayload(netip.IPv6Unspecified(), dirSrc, reg),
		}
		if !p.v6 {
			exprs[len(exprs)-1] = addrPayload(netip.IPv4Unspecified(), dirSrc, reg)
		}
		if p.withPort {
			exprs = append(exprs, portPayload(dirSrc, reg+alen/4))
		}
		exprs = append(exprs,
			&expr.Hash{SourceRegister: reg, DestRegister: reg + hlen/4, Length: hlen, Modulus: p.buckets,
				Seed: p.seed, Type: expr.HashTypeJenkins},
			&expr.Dynset{SrcRegKey: reg, SetName: s.Name, SetID: s.ID, Operation: uint32(unix.NFT_DYNSET_OP_ADD)},
		)
		conn.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: exprs})
	}
	if err := conn.Flush(); err != nil {
		t.Fatalf("install hash recorder: %v", err)
	}
	return conn, sets
}

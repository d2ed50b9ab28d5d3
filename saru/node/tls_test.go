package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/saru-lb/saru/deploy/nstest"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/node"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "saru test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, name string, serial int64) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMutualTLS: with TLS, reads need no client certificate; a verified
// client certificate authorises Drain without a token; peers reach each
// other over TLS (the drain is forwarded).
func TestMutualTLS(t *testing.T) {
	ca := newCA(t)
	var ds []*director
	for i, id := range []string{"d1", "d2"} {
		cert := ca.issue(t, id, int64(10+i))
		o := defaults()
		o.tls = &node.Options{
			ServerCreds: credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool, MinVersion: tls.VersionTLS13}),
			ClientCreds: credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool, MinVersion: tls.VersionTLS13}),
		}
		var seeds []string
		if i > 0 {
			seeds = []string{ds[0].n.GossipAddr()}
		}
		ds = append(ds, startDirector(t, id, seeds, o))
	}
	nstest.WaitFor(t, 10*time.Second, "converge over TLS", func() error { return settled(ds, testBuckets) })

	dial := func(cert *tls.Certificate) sarupb.ClusterClient {
		cfg := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := grpc.NewClient(ds[0].n.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return sarupb.NewClusterClient(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	anon := dial(nil)
	if _, err := anon.GetStatus(ctx, &sarupb.GetStatusRequest{}); err != nil {
		t.Fatalf("read without a client certificate: %v", err)
	}
	if _, err := anon.Drain(ctx, &sarupb.DrainRequest{NodeId: "d2"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("drain without certificate or token: %v, want Unauthenticated", err)
	}
	admin := ca.issue(t, "operator", 99)
	resp, err := dial(&admin).Drain(ctx, &sarupb.DrainRequest{NodeId: "d2"})
	if err != nil {
		t.Fatalf("drain with a client certificate: %v", err)
	}
	if owned, _ := ds[1].filter.get(); len(owned) != 0 || resp.State != sarupb.MemberState_MEMBER_STATE_DRAINING {
		t.Fatalf("d2 after drain: %d buckets, %v", len(owned), resp)
	}
	// A certificate from another CA is refused at the handshake.
	other := newCA(t).issue(t, "intruder", 5)
	if _, err := dial(&other).Drain(ctx, &sarupb.DrainRequest{NodeId: "d2"}); err == nil {
		t.Fatal("drain with a foreign certificate succeeded")
	}
}

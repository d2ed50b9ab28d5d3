package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/saru/config"
)

func writeFile(t *testing.T, dir, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestCheckEnvironment(t *testing.T) {
	dir := t.TempDir()
	token := writeFile(t, dir, "token", "0123456789abcdef-token\n", 0o600)
	key := writeFile(t, dir, "gossip.key", "c2FydS1nb3NzaXAta2V5LTMyLWJ5dGVzLWxvbmchISE=\n", 0o400)
	cert, certKey := writeCert(t, dir)
	good := config.Config{TokenFile: token, GossipKeyFile: key, CertFile: cert, KeyFile: certKey, ClientCAFile: cert, Interface: "lo"}
	if err := good.CheckEnvironment(config.EnvOptions{}); err != nil {
		t.Fatalf("good environment: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		edit func(c *config.Config)
		o    config.EnvOptions
		want string
	}{
		{"missing token", func(c *config.Config) { c.TokenFile = missing }, config.EnvOptions{},
			`grpc.token_file: invalid value "` + missing + `": open ` + missing + `: no such file or directory`},
		{"token world-readable", func(c *config.Config) { c.TokenFile = writeFile(t, dir, "token644", "0123456789abcdef-token\n", 0o644) },
			config.EnvOptions{}, "permissions 0644 for " + filepath.Join(dir, "token644") + " are too open"},
		{"token group-readable", func(c *config.Config) { c.TokenFile = writeFile(t, dir, "token640", "0123456789abcdef-token\n", 0o640) },
			config.EnvOptions{}, "permissions 0640 for"},
		{"short token", func(c *config.Config) { c.TokenFile = writeFile(t, dir, "short", "abc\n", 0o600) },
			config.EnvOptions{}, "grpc.token_file: invalid value \"" + filepath.Join(dir, "short") + "\": the token is 3 characters, want at least 16"},
		{"token is a directory", func(c *config.Config) { c.TokenFile = dir }, config.EnvOptions{}, "grpc.token_file: invalid value"},
		{"missing gossip key", func(c *config.Config) { c.GossipKeyFile = missing }, config.EnvOptions{}, "gossip.key_file: invalid value \"" + missing},
		{"gossip key mode", func(c *config.Config) {
			c.GossipKeyFile = writeFile(t, dir, "key644", "c2FydS1nb3NzaXAta2V5LTMyLWJ5dGVzLWxvbmchISE=\n", 0o644)
		}, config.EnvOptions{}, "gossip.key_file: invalid value \"" + filepath.Join(dir, "key644") + "\": permissions 0644"},
		{"zero gossip key", func(c *config.Config) {
			c.GossipKeyFile = writeFile(t, dir, "zero", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0o600)
		}, config.EnvOptions{}, "gossip.key_file: invalid value \"" + filepath.Join(dir, "zero") + "\": the key is all zero bytes"},
		{"gossip key length", func(c *config.Config) { c.GossipKeyFile = writeFile(t, dir, "len", "c2hvcnQ=\n", 0o600) },
			config.EnvOptions{}, "want a base64 16, 24 or 32-byte key"},
		{"tls key mode", func(c *config.Config) { os.Chmod(certKey, 0o644) }, config.EnvOptions{}, "grpc.key_file: invalid value \"" + certKey + "\": permissions 0644"},
		{"missing cert", func(c *config.Config) { c.CertFile = missing }, config.EnvOptions{}, "grpc.cert_file: invalid value \"" + missing},
		{"client ca not pem", func(c *config.Config) { c.ClientCAFile = token }, config.EnvOptions{}, "grpc.client_ca_file: invalid value \"" + token + "\": no PEM certificates"},
		{"missing interface", func(c *config.Config) { c.Interface = "nosuch0" }, config.EnvOptions{}, `interface: invalid value "nosuch0": route ip+net: no such network interface`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Chmod(certKey, 0o600)
			c := good
			tc.edit(&c)
			err := c.CheckEnvironment(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A director that leaves the interface alone does not need it.
	c := good
	c.Interface = "nosuch0"
	if err := c.CheckEnvironment(config.EnvOptions{NoInterface: true}); err != nil {
		t.Errorf("NoInterface: %v", err)
	}
}

// The credential readers are what the start uses: they return the secret.
func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	tok, err := config.ReadToken(writeFile(t, dir, "token", "  0123456789abcdef-token\n", 0o600))
	if err != nil || tok != "0123456789abcdef-token" {
		t.Fatalf("ReadToken = %q, %v", tok, err)
	}
	key, err := config.ReadGossipKey(writeFile(t, dir, "key", "c2FydS1nb3NzaXAta2V5LTMyLWJ5dGVzLWxvbmchISE=\n", 0o600))
	if err != nil || string(key) != "saru-gossip-key-32-bytes-long!!!" {
		t.Fatalf("ReadGossipKey = %q, %v", key, err)
	}
}

// checkEnvironmentOfExample runs the environment check on the shipped
// example. The files and the interface it names (/etc/saru/token, eth0)
// belong to a director, not to a test machine, so the test puts a private
// token in their place and uses the loopback interface: the check must
// then pass, and with the paths as written it may only fail on them.
func checkEnvironmentOfExample(t *testing.T, c config.Config) {
	t.Helper()
	if c.TokenFile != "/etc/saru/token" || c.Interface != "eth0" || c.GossipKeyFile != "" || c.CertFile != "" {
		t.Fatalf("the example names other files: token %q, interface %q, gossip key %q, cert %q; update this test", c.TokenFile, c.Interface, c.GossipKeyFile, c.CertFile)
	}
	c.TokenFile = writeFile(t, t.TempDir(), "token", "0123456789abcdef-token\n", 0o600)
	c.Interface = "lo"
	if err := c.CheckEnvironment(config.EnvOptions{}); err != nil {
		t.Fatalf("deploy/saru/saru.yaml environment: %v", err)
	}
}

// writeCert writes a self-signed certificate and its private key (mode
// 0600).
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dir1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert = writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	key = writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})), 0o600)
	return cert, key
}

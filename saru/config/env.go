package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// EnvOptions adjust CheckEnvironment to how the daemon will run.
type EnvOptions struct {
	// NoInterface: the daemon leaves the interface alone (saru
	// -no-interface), so it need not exist.
	NoInterface bool
}

// CheckEnvironment checks what the configuration names outside itself, as
// the daemon's start would find it: the credential files exist, are
// readable, hold well-formed non-zero secrets and are private (mode 0600
// or stricter, like ssh's key files), and the interface exists. saru
// -check and the start run this same function after For. The error lists
// every problem, each naming its field.
func (c Config) CheckEnvironment(o EnvOptions) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.TokenFile != "" {
		_, err := ReadToken(c.TokenFile)
		add(err)
	}
	if c.GossipKeyFile != "" {
		_, err := ReadGossipKey(c.GossipKeyFile)
		add(err)
	}
	if c.CertFile != "" {
		_, _, err := c.ReadTLS()
		add(err)
	}
	if c.Interface != "" && !o.NoInterface {
		if _, err := net.InterfaceByName(c.Interface); err != nil {
			add(ferr("interface", c.Interface, "%v", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// MinTokenLen is the shortest bearer token accepted.
const MinTokenLen = 16

// ReadToken reads the API's bearer token (grpc.token_file): at least
// MinTokenLen characters, in a private file.
func ReadToken(path string) (string, error) {
	b, err := ReadSecret("grpc.token_file", path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", ferr("grpc.token_file", path, "the token is %d characters, want at least %d", len(tok), MinTokenLen)
	}
	return tok, nil
}

// ReadGossipKey reads memberlist's encryption key (gossip.key_file): a
// base64 16, 24 or 32-byte key, not all zero, in a private file.
func ReadGossipKey(path string) ([]byte, error) {
	b, err := ReadSecret("gossip.key_file", path)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
		return nil, ferr("gossip.key_file", path, "want a base64 16, 24 or 32-byte key")
	}
	if isZero(key) {
		return nil, ferr("gossip.key_file", path, "the key is all zero bytes; generate one with: head -c 32 /dev/urandom | base64")
	}
	return key, nil
}

// ReadTLS loads the API's certificate and key (grpc.cert_file and
// grpc.key_file, the key in a private file) and, when configured, the
// client CA pool (grpc.client_ca_file); pool is nil without one.
func (c Config) ReadTLS() (cert tls.Certificate, pool *x509.CertPool, err error) {
	if _, err := ReadSecret("grpc.key_file", c.KeyFile); err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err = tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return tls.Certificate{}, nil, ferr("grpc.cert_file", c.CertFile, "with key_file %s: %v", c.KeyFile, err)
	}
	if c.ClientCAFile == "" {
		return cert, nil, nil
	}
	pem, err := os.ReadFile(c.ClientCAFile)
	if err != nil {
		return tls.Certificate{}, nil, ferr("grpc.client_ca_file", c.ClientCAFile, "%v", err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, ferr("grpc.client_ca_file", c.ClientCAFile, "no PEM certificates")
	}
	return cert, pool, nil
}

// ReadSecret reads the secret file a field names, refusing it, as ssh
// refuses a private key, when its group or others may access it.
func ReadSecret(field, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ferr(field, path, "%v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, ferr(field, path, "%v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, ferr(field, path, "not a regular file")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, ferr(field, path, "permissions %04o for %s are too open: want 0600 or stricter (chmod 600 %s)", perm, path, path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, ferr(field, path, "%v", err)
	}
	return b.Bytes(), nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/saru-lb/saru/syncd/wire"
)

// CheckEnvironment checks what the configuration names outside itself, as
// the start would find it: the key file exists, is private (mode 0600 or
// stricter, like ssh's key files) and holds well-formed, non-zero keys;
// the multicast interface exists. syncd -check and the start run this same
// function after Check. The error lists every problem, each naming its
// field.
func (c Config) CheckEnvironment() error {
	var errs []error
	if _, err := ReadKeyFile(c.KeyFile); err != nil {
		errs = append(errs, err)
	}
	if ifc := c.Transport.Interface; ifc != "" {
		if _, err := net.InterfaceByName(ifc); err != nil {
			errs = append(errs, fmt.Errorf("multicast.interface: invalid value %q: %w", ifc, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// ReadKeyFile reads and parses the cluster key file (key_file), refusing
// a file its group or others may access and an all-zero secret.
func ReadKeyFile(path string) ([]wire.Key, error) {
	data, err := readSecret(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: invalid value %q: %w", path, err)
	}
	keys, err := wire.ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key_file: invalid value %q: %w", path, err)
	}
	for _, k := range keys {
		if isZero(k.Secret) {
			return nil, fmt.Errorf("key_file: invalid value %q: key %d is all zero bytes; generate one with: od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'", path, k.ID)
		}
	}
	return keys, nil
}

// readSecret reads a secret file, refusing it, as ssh refuses a private
// key, when its group or others may access it.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("permissions %04o for %s are too open: want 0600 or stricter (chmod 600 %s)", perm, path, path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, err
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

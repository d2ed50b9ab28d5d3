package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeKey(t *testing.T, dir, name, data string, mode os.FileMode) string {
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
	secret := strings.Repeat("5a", 32)
	good, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	good.KeyFile = writeKey(t, dir, "sync.key", "# rolled over\n1 "+secret+"\n2 "+strings.Repeat("a5", 16)+"\n", 0o600)
	good.Transport.Interface = "lo"
	if err := good.CheckEnvironment(); err != nil {
		t.Fatalf("good environment: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"missing key file", func(c *Config) { c.KeyFile = missing },
			`key_file: invalid value "` + missing + `": open ` + missing + `: no such file or directory`},
		{"world-readable", func(c *Config) { c.KeyFile = writeKey(t, dir, "k644", "1 "+secret+"\n", 0o644) },
			`key_file: invalid value "` + filepath.Join(dir, "k644") + `": permissions 0644 for ` + filepath.Join(dir, "k644") + ` are too open`},
		{"group-readable", func(c *Config) { c.KeyFile = writeKey(t, dir, "k640", "1 "+secret+"\n", 0o640) }, "permissions 0640 for"},
		{"zero secret", func(c *Config) {
			c.KeyFile = writeKey(t, dir, "zero", "1 "+secret+"\n2 "+strings.Repeat("00", 32)+"\n", 0o600)
		},
			`key_file: invalid value "` + filepath.Join(dir, "zero") + `": key 2 is all zero bytes`},
		{"short secret", func(c *Config) { c.KeyFile = writeKey(t, dir, "short", "1 0a0b\n", 0o600) }, "secret is 2 bytes, want at least 16"},
		{"no keys", func(c *Config) { c.KeyFile = writeKey(t, dir, "empty", "# nothing\n", 0o600) }, "no keys"},
		{"directory", func(c *Config) { c.KeyFile = dir }, `key_file: invalid value "` + dir + `"`},
		{"missing interface", func(c *Config) { c.Transport.Interface = "nosuch0" }, `multicast.interface: invalid value "nosuch0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.CheckEnvironment()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestReadKeyFile(t *testing.T) {
	keys, err := ReadKeyFile(writeKey(t, t.TempDir(), "k", "7 "+strings.Repeat("5a", 16)+"\n", 0o400))
	if err != nil || len(keys) != 1 || keys[0].ID != 7 || len(keys[0].Secret) != 16 {
		t.Fatalf("ReadKeyFile = %+v, %v", keys, err)
	}
}

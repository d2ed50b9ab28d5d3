package kernellab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestArchiveListsWithCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed")
	}
	a := newArchive()
	a.file("/usr/sbin/tool", 0o755, []byte("#!/bin/sh\necho hi\n"))
	a.symlink("/bin/sh", "/bin/busybox")
	a.file("/etc/odd", 0o600, []byte("123")) // length not a multiple of 4
	var buf bytes.Buffer
	if _, err := a.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	got := string(out)
	for _, want := range []string{"drwxr-xr-x", " usr/sbin/tool", "-rwxr-xr-x", "bin/sh -> /bin/busybox", "-rw-------", " etc/odd", " etc\n", " usr\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("cpio -t -v lacks %q:\n%s", want, got)
		}
	}
}

func TestParseModinfo(t *testing.T) {
	sec := []byte("license=GPL\x00depends=nf_conntrack,libcrc32c,nf-defrag-ipv6\x00softdep=pre: crc32c post: foo\x00name=ip_vs\x00")
	mi := parseModinfo(sec)
	if want := []string{"nf_conntrack", "libcrc32c", "nf_defrag_ipv6"}; !reflect.DeepEqual(mi.depends, want) {
		t.Errorf("depends %v, want %v", mi.depends, want)
	}
	if want := []string{"crc32c"}; !reflect.DeepEqual(mi.softPre, want) {
		t.Errorf("softdep pre %v, want %v", mi.softPre, want)
	}
	if mi := parseModinfo([]byte("depends=\x00")); len(mi.depends) != 0 {
		t.Errorf("empty depends parsed as %v", mi.depends)
	}
}

func TestResolveModulesOrdersDependenciesFirst(t *testing.T) {
	db := map[string]modinfo{
		"ip_vs":          {depends: []string{"nf_conntrack", "libcrc32c"}},
		"nf_conntrack":   {depends: []string{"nf_defrag_ipv4", "libcrc32c"}},
		"libcrc32c":      {softPre: []string{"crc32c", "crc32c_generic"}},
		"nf_defrag_ipv4": {},
		"crc32c_generic": {},
		"ip_vs_rr":       {depends: []string{"ip_vs"}},
	}
	info := func(name string) (modinfo, string, bool, error) {
		mi, ok := db[name]
		return mi, "kernel/" + name + ".ko", ok, nil
	}
	mods, err := resolveModules([]string{"ip_vs_rr", "ip-vs"}, info)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		if _, dup := pos[m.name]; dup {
			t.Fatalf("%s listed twice", m.name)
		}
		pos[m.name] = i
	}
	if len(pos) != len(db) {
		t.Errorf("resolved %d modules, want %d: %v", len(pos), len(db), mods)
	}
	for name, mi := range db {
		for _, d := range append(mi.depends, mi.softPre...) {
			if p, ok := pos[d]; ok && p > pos[name] {
				t.Errorf("%s loads after %s, which needs it", d, name)
			}
		}
	}
	dep := modulesDep(mods)
	if !strings.Contains(dep, "kernel/ip_vs_rr.ko: kernel/ip_vs.ko kernel/nf_conntrack.ko") {
		t.Errorf("modules.dep lacks transitive deps of ip_vs_rr:\n%s", dep)
	}
	if _, err := resolveModules([]string{"no_such_module"}, info); err == nil || !strings.Contains(err.Error(), `"no_such_module"`) {
		t.Errorf("missing module error %v does not name it", err)
	}
	db["nf_defrag_ipv4"] = modinfo{depends: []string{"ip_vs"}}
	if _, err := resolveModules([]string{"ip_vs"}, info); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle not reported: %v", err)
	}
}

func TestParseLdd(t *testing.T) {
	out := []byte("\tlinux-vdso.so.1 (0x00007ffd)\n\tlibpopt.so.0 => /lib/x86_64-linux-gnu/libpopt.so.0 (0x00007f96)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f96)\n")
	libs, err := parseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/lib/x86_64-linux-gnu/libpopt.so.0", "/lib64/ld-linux-x86-64.so.2"}; !reflect.DeepEqual(libs, want) {
		t.Errorf("got %v, want %v", libs, want)
	}
	if _, err := parseLdd([]byte("\tlibfoo.so.1 => not found\n")); err == nil {
		t.Error("missing library not reported")
	}
}

func TestTestPattern(t *testing.T) {
	for name, want := range map[string]string{
		"TestA":          "^TestA$",
		"TestA/sub_case": "^TestA$/^sub_case$",
		"TestA/x.y(1)":   `^TestA$/^x\.y\(1\)$`,
	} {
		if got := testPattern(name); got != want {
			t.Errorf("testPattern(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestScanConsole(t *testing.T) {
	in := "SeaBIOS\r\n\x1b[2J" + markerReady + "2.50\r\nhello\r\npartial " + markerExit + "3\r\n[ 3.1] reboot: Power down\r\n"
	var out bytes.Buffer
	exit, ready, uptime, err := scanConsole(strings.NewReader(in), &out, func() time.Duration { return time.Second })
	if err != nil {
		t.Fatal(err)
	}
	if exit != 3 || ready != time.Second || uptime != 2500*time.Millisecond {
		t.Errorf("exit %d ready %v uptime %v", exit, ready, uptime)
	}
	if want := "SeaBIOS\n\x1b[2J\nhello\npartial \n[ 3.1] reboot: Power down\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	exit, _, _, _ = scanConsole(strings.NewReader("Kernel panic\n"), nil, func() time.Duration { return 0 })
	if exit != -1 {
		t.Errorf("no marker: exit %d, want -1", exit)
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name string
		exit int
		out  string
		want verdict
		msg  string
	}{
		{"pass", 0, "=== RUN   TestA\n--- PASS: TestA (0.01s)\nPASS\n", verdictPass, ""},
		{"fail", 1, "--- FAIL: TestA (0.01s)\nFAIL\n", verdictFail, "exit status 1"},
		{"panic", 2, "panic: boom\n", verdictFail, "exit status 2"},
		{"skip", 0, "--- SKIP: TestA (0.00s)\n    x_test.go:9: no\nPASS\n", verdictSkip, "skipped"},
		{"no match", 0, "testing: warning: no tests to run\nPASS\n", verdictFail, "no test matching"},
		{"silent", 0, "PASS\n", verdictFail, "without reporting TestA as passed"},
		{"subtest name only", 0, "    --- PASS: TestA (0.01s)\n", verdictFail, "without reporting"},
		{"prefix of another test", 0, "--- PASS: TestAB (0.01s)\n", verdictFail, "without reporting"},
	} {
		v, msg := judge("TestA", "^TestA$", tc.exit, tc.out)
		if v != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: verdict %v %q, want %v containing %q", tc.name, v, msg, tc.want, tc.msg)
		}
	}
}

func TestPVHNote(t *testing.T) {
	if hasPVHNote([]byte("\x7fELF not really")) || hasPVHNote(nil) {
		t.Error("garbage recognised as a PVH kernel")
	}
	if _, err := extractVMLinux(context.Background(), []byte("no xz stream here")); err == nil {
		t.Error("extracted a kernel from nothing")
	}
	dir, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	k, err := cachedKernel(dir, "")
	if err != nil || k.VMLinux == "" {
		t.Skip("no cached kernel to check")
	}
	data, err := os.ReadFile(k.VMLinux)
	if err != nil {
		t.Fatal(err)
	}
	if !hasPVHNote(data) {
		t.Errorf("cached %s has no PVH note", k.VMLinux)
	}
}

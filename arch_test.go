// Package arch_test checks the repository's architecture: every package says
// what it is, imports flow one way (cmd → saru, syncd → filter, proto), and
// the pure cores stay free of I/O.
package arch_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/saru-lb/saru"

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Dir        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) > 0 && p.Doc == "" {
			t.Errorf("%s has no package doc comment (add a doc.go)", rel(p.ImportPath))
		}
	}
}

// rules: a package under the prefix must not import anything under these.
var forbidden = []struct {
	prefix string
	deny   []string
}{
	{"cmd/", nil}, // checked separately: nothing imports cmd
	{"filter", []string{"saru", "syncd", "cmd"}},
	{"proto", []string{"saru", "syncd", "filter", "cmd"}},
	{"syncd", []string{"saru", "cmd"}},
	{"saru", []string{"syncd/", "cmd"}}, // syncd's API is reached through proto/syncd
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, strings.TrimSuffix(prefix, "/")+"/")
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := rel(imp)
			if under(to, "cmd") {
				t.Errorf("%s imports %s: nothing imports cmd", from, to)
			}
			for _, r := range forbidden {
				if !under(from, r.prefix) {
					continue
				}
				for _, d := range r.deny {
					if under(to, d) {
						t.Errorf("%s imports %s: %s must not depend on %s", from, to, r.prefix, d)
					}
				}
			}
		}
	}
}

// Pure packages take inputs and return decisions: no sockets, clocks,
// kernel or RPC.
var pure = []string{
	"filter/bucket", "saru/partition", "saru/coord",
	"syncd/mesh", "syncd/wire", "syncd/reliable", "syncd/table", "syncd/ipvssync",
}

var impure = []string{"net", "os", "os/exec", "syscall", "sync", "golang.org/x/sys", "github.com/mdlayher",
	"github.com/google/nftables", "github.com/jsimonetti", "github.com/hashicorp", "google.golang.org/grpc", "github.com/ti-mo"}

// clock lists what of package time reads the clock, sleeps or starts a
// timer: a pure package may hold times and durations as values (passed
// in), never these.
var clock = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}

func TestPureCoresDoNoIO(t *testing.T) {
	for _, p := range listPackages(t) {
		if !slices.Contains(pure, rel(p.ImportPath)) {
			continue
		}
		for _, imp := range p.Imports {
			if imp == "net/netip" {
				continue // addresses as values, no sockets
			}
			for _, bad := range impure {
				if imp == bad || strings.HasPrefix(imp, bad+"/") {
					t.Errorf("pure package %s imports %s", rel(p.ImportPath), imp)
				}
			}
		}
		for _, f := range p.GoFiles {
			for _, use := range clockUses(t, filepath.Join(p.Dir, f)) {
				t.Errorf("pure package %s reads the clock: %s", rel(p.ImportPath), use)
			}
		}
	}
}

// clockUses lists the uses of package time's clock functions in a file.
func clockUses(t *testing.T, path string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	name := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			name = "time"
			if imp.Name != nil {
				name = imp.Name.Name
			}
		}
	}
	if name == "" {
		return nil
	}
	if name == "_" || name == "." {
		return []string{fset.Position(f.Package).String() + ": time imported as " + name}
	}
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && slices.Contains(clock, sel.Sel.Name) {
			uses = append(uses, fset.Position(sel.Pos()).String()+": time."+sel.Sel.Name)
		}
		return true
	})
	return uses
}

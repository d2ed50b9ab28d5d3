package filter

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the filter below the coordinator in the import graph: it
// must not import the rest of saru, the sync daemon, the commands or gRPC,
// and every package under filter/ has a package comment.
func TestImports(t *testing.T) {
	forbidden := []string{
		"github.com/saru-lb/saru/saru", "github.com/saru-lb/saru/syncd", "github.com/saru-lb/saru/cmd",
		"github.com/saru-lb/saru/proto", "google.golang.org/grpc",
	}
	documented := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if _, ok := documented[dir]; !ok {
			documented[dir] = false
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") {
			documented[dir] = true
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s imports %s", path, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, ok := range documented {
		if !ok {
			t.Errorf("package in %s has no package comment starting \"Package <name> \"", dir)
		}
	}
	if len(documented) < 2 { // filter and filter/sharedmac
		t.Errorf("walked %d packages, want filter and its sub-packages", len(documented))
	}
}

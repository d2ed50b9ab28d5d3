package kernellab

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules returns the modules loaded in every guest, in this order after their
// dependencies: IPVS with every scheduler, conntrack, NAT, nf_tables with the
// expressions the filter uses, and the virtual devices lab topologies are
// built from.
func DefaultModules() []string {
	return []string{
		"crc32c_generic", // libcrc32c needs a crc32c implementation before ip_vs loads
		"ip_vs",
		"ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
		"ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_mh", "ip_vs_fo", "ip_vs_ovf",
		"nf_conntrack", "nf_conntrack_netlink", "nf_nat",
		"nf_tables", "nft_ct", "nft_hash", "nft_numgen", "nft_masq", "nft_nat", "nft_chain_nat",
		"nft_reject", "nft_reject_inet", "nft_reject_ipv4", "nft_reject_ipv6",
		"nft_limit", "nft_log", "nft_redir", "nft_quota",
		"nft_fib", "nft_fib_inet", "nft_fib_ipv4", "nft_fib_ipv6",
		"veth", "bridge", "dummy", "ipip", "ip6_tunnel", "sch_netem",
	}
}

// moduleName normalises a module file or module name to the kernel's form:
// no directory, no .ko suffix, dashes as underscores.
func moduleName(s string) string {
	s = filepath.Base(s)
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// modinfo is what the lab needs from a module's .modinfo section.
type modinfo struct {
	depends []string // hard dependencies, by name
	softPre []string // soft dependencies that should load first
}

// parseModinfo parses a .modinfo section: NUL-separated key=value pairs.
func parseModinfo(sec []byte) modinfo {
	var mi modinfo
	for _, kv := range bytes.Split(sec, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					mi.depends = append(mi.depends, moduleName(d))
				}
			}
		case "softdep":
			pre := false
			for _, f := range strings.Fields(v) {
				switch f {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						mi.softPre = append(mi.softPre, moduleName(f))
					}
				}
			}
		}
	}
	return mi
}

// readModinfo reads the .modinfo section of a module file.
func readModinfo(file string) (modinfo, error) {
	f, err := elf.Open(file)
	if err != nil {
		return modinfo{}, fmt.Errorf("open module %s: %w", file, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return modinfo{}, fmt.Errorf("module %s has no .modinfo section", file)
	}
	b, err := s.Data()
	if err != nil {
		return modinfo{}, fmt.Errorf("read .modinfo of %s: %w", file, err)
	}
	return parseModinfo(b), nil
}

// moduleTree indexes a kernel's module directory (lib/modules/<version>).
type moduleTree struct {
	root  string            // lib/modules/<version>
	paths map[string]string // module name -> path relative to root
}

func loadModuleTree(root string) (*moduleTree, error) {
	t := &moduleTree{root: root, paths: map[string]string{}}
	err := filepath.WalkDir(filepath.Join(root, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			t.paths[moduleName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules under %s: %w", root, err)
	}
	return t, nil
}

// resolvedModule is one module to ship, with its hard dependencies.
type resolvedModule struct {
	name    string
	path    string   // relative to the module root
	depends []string // names, direct hard dependencies
}

// resolveModules returns the requested modules and everything they need, in
// a load order where every module follows its hard and soft dependencies.
// info returns the modinfo of a module name, or ok=false when the name is not
// a module file (built in, or an alias); a requested name that is not a module
// is an error, a soft dependency that is not one is ignored.
func resolveModules(requested []string, info func(name string) (mi modinfo, path string, ok bool, err error)) ([]resolvedModule, error) {
	var order []resolvedModule
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, required bool, chain []string) error
	visit = func(name string, required bool, chain []string) error {
		switch state[name] {
		case 1:
			if !required {
				return nil // soft dependency cycles are broken silently
			}
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(chain, " -> "), name)
		case 2:
			return nil
		}
		mi, p, ok, err := info(name)
		if err != nil {
			return err
		}
		if !ok {
			if required {
				return fmt.Errorf("kernel module %q not found (needed by %s)", name, strings.Join(chain, " -> "))
			}
			state[name] = 2
			return nil
		}
		state[name] = 1
		chain = append(chain, name)
		for _, d := range mi.softPre {
			if err := visit(d, false, chain); err != nil {
				return err
			}
		}
		for _, d := range mi.depends {
			if err := visit(d, true, chain); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, resolvedModule{name: name, path: p, depends: mi.depends})
		return nil
	}
	for _, r := range requested {
		if err := visit(moduleName(r), true, []string{"requested"}); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modulesDep renders modules.dep for the resolved modules, in the format
// modprobe reads: "path: dep-path dep-path ...", with dependencies listed
// transitively, most dependent first.
func modulesDep(mods []resolvedModule) string {
	byName := map[string]resolvedModule{}
	for _, m := range mods {
		byName[m.name] = m
	}
	var b strings.Builder
	sorted := append([]resolvedModule(nil), mods...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
	for _, m := range sorted {
		var deps []string
		seen := map[string]bool{}
		var walk func(n string)
		walk = func(n string) {
			for _, d := range byName[n].depends {
				if !seen[d] {
					seen[d] = true
					deps = append(deps, byName[d].path)
					walk(d)
				}
			}
		}
		walk(m.name)
		b.WriteString(m.path + ":")
		for _, d := range deps {
			b.WriteString(" " + d)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// resolve is resolveModules over a module tree on disk.
func (t *moduleTree) resolve(requested []string) ([]resolvedModule, error) {
	return resolveModules(requested, func(name string) (modinfo, string, bool, error) {
		p, ok := t.paths[name]
		if !ok {
			return modinfo{}, "", false, nil
		}
		mi, err := readModinfo(filepath.Join(t.root, p))
		return mi, p, true, err
	})
}

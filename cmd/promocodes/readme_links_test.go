package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README and docs link only to files that are in the repository (they
// once pointed at a design file kept outside it), and name no such file in
// prose.
func TestDocsLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	mdName := regexp.MustCompile(`\b[A-Za-z0-9_./-]*[A-Z][A-Za-z0-9_-]*\.md\b`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", rel, target)
			}
		}
		for _, name := range mdName.FindAllString(string(b), -1) {
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), name)); err == nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, name)); err != nil {
				t.Errorf("%s names %s, which is not in the repository", rel, name)
			}
		}
	}
}

// Code comments cite documents that are in the repository: a named *.md file
// resolves from the module root or from the file's own folder.
func TestCodeCitesDocsInRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	mdName := regexp.MustCompile(`\b[A-Za-z0-9_./-]*[A-Za-z][A-Za-z0-9_-]*\.md\b`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "readme_links_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, line := range strings.Split(string(b), "\n") {
			i := strings.Index(line, "//")
			if i < 0 {
				continue
			}
			for _, name := range mdName.FindAllString(line[i:], -1) {
				name = strings.TrimPrefix(name, "./")
				if i := strings.Index(name, "/blob/main/"); i >= 0 {
					name = name[i+len("/blob/main/"):] // a link to this repository's own file
				}
				if _, err := os.Stat(filepath.Join(root, name)); err == nil {
					continue
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(path), name)); err == nil {
					continue
				}
				t.Errorf("%s cites %s, which is not in the repository", rel, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The README's layout table names every top-level folder and every package
// folder under pkg/ and api/, so a newcomer can place any file.
func TestReadmeLayoutListsEveryFolder(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	cell := regexp.MustCompile("`([^`]+)`")
	brace := regexp.MustCompile(`^(.*)\{([^}]*)\}(.*)$`)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line[1:], "|", 2)[0]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			names := []string{m[1]}
			if p := brace.FindStringSubmatch(m[1]); p != nil {
				names = nil
				for _, alt := range strings.Split(p[2], ",") {
					names = append(names, p[1]+alt+p[3])
				}
			}
			for _, n := range names {
				listed[strings.TrimSuffix(n, "/")] = true
			}
		}
	}
	var want []string
	top, _ := os.ReadDir(root)
	for _, d := range top {
		if d.IsDir() && d.Name() != ".git" && d.Name() != "bin" && d.Name() != "node_modules" {
			want = append(want, d.Name())
		}
	}
	for _, parent := range []string{"pkg", "api"} {
		sub, _ := os.ReadDir(filepath.Join(root, parent))
		for _, d := range sub {
			if d.IsDir() {
				want = append(want, parent+"/"+d.Name())
			}
		}
	}
	for _, w := range want {
		if listed[w] {
			continue
		}
		covered := false // a row may name deeper folders of w (pkg/store/{sqlite,...})
		for l := range listed {
			if strings.HasPrefix(l, w+"/") {
				covered = true
			}
		}
		if !covered {
			t.Errorf("README's layout table does not list %s/", w)
		}
	}
}

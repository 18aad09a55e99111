package main

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// Code comments, migration comments and the docs cite documents that are in
// the repository: a named *.md file in a Go or SQL comment resolves from the
// module root or from the file's own folder. None of them points at what a
// reader of the repository cannot see: a tracker's issue numbers ("issue 8",
// "issue #8") or a design file kept outside it and its numbered guarantees
// (the guarantees are docs/contracts.md's). Vendored text (api/docsui) is not
// scanned.
func TestCodeCitesDocsInRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	mdName := regexp.MustCompile(`\b[A-Za-z0-9_./-]*[A-Za-z][A-Za-z0-9_-]*\.md\b`)
	forbidden := []*regexp.Regexp{
		regexp.MustCompile(`(?i)\bissue ?#?[0-9]+`), // issue 8, issue #8
		regexp.MustCompile(`(?i)\bissue #`),
		regexp.MustCompile(`\bDESIGN\b`), // an outside design file, by name or by its numbered guarantees
	}
	docsDir := filepath.Join(root, "docs")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || strings.HasSuffix(path, "readme_links_test.go") {
			return nil
		}
		var comment func(line string) int // where a line's comment starts, -1 for none
		switch {
		case strings.HasSuffix(path, ".go"):
			comment = func(line string) int { return strings.Index(line, "//") }
		case strings.HasSuffix(path, ".sql"):
			comment = func(line string) int { return strings.Index(line, "--") }
		case strings.HasSuffix(path, ".md") && (path == filepath.Join(root, "README.md") || strings.HasPrefix(path, docsDir+string(filepath.Separator))):
			comment = func(string) int { return 0 } // all of it is prose
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		isMD := strings.HasSuffix(path, ".md")
		for n, line := range strings.Split(string(b), "\n") {
			i := comment(line)
			if i < 0 {
				continue
			}
			text := line[i:]
			for _, re := range forbidden {
				if m := re.FindString(text); m != "" {
					t.Errorf("%s:%d cites %q, which a reader of the repository cannot see: cite the repository's own docs", rel, n+1, m)
				}
			}
			if isMD {
				continue // TestDocsLinksResolve checks the docs' file names
			}
			for _, name := range mdName.FindAllString(text, -1) {
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
				t.Errorf("%s:%d cites %s, which is not in the repository", rel, n+1, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The README's layout table names every top-level folder, every folder under
// pkg/, api/ and docs/, and every folder at any depth that holds Go files
// (hidden folders, testdata, migrations, node_modules and bin aside), so a
// newcomer can place any file.
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
	want := map[string]bool{}
	top, _ := os.ReadDir(root)
	for _, d := range top {
		if d.IsDir() && d.Name() != ".git" && d.Name() != "bin" && d.Name() != "node_modules" {
			want[d.Name()] = true
		}
	}
	for _, parent := range []string{"pkg", "api", "docs"} {
		sub, _ := os.ReadDir(filepath.Join(root, parent))
		for _, d := range sub {
			if d.IsDir() {
				want[parent+"/"+d.Name()] = true
			}
		}
	}
	// Every folder that holds Go files, at any depth (test helpers such as
	// pkg/store/storetest included).
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch n := d.Name(); {
			case path == root:
			case strings.HasPrefix(n, "."), n == "testdata", n == "migrations", n == "node_modules", n == "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".go") {
			if dir, _ := filepath.Rel(root, filepath.Dir(path)); dir != "." {
				want[filepath.ToSlash(dir)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range slices.Sorted(maps.Keys(want)) {
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

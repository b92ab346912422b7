package doclinks

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// outside is the directory beside the repository where the development
// workspace keeps documents that are not part of it. It is spelled in two
// pieces so this file does not refer to it.
var outside = "../" + "shared/"

var (
	// docName is a document named in prose or a comment: an upper-case
	// Markdown file name, which must be one of the repository's.
	docName = regexp.MustCompile(`\b[A-Z][A-Z0-9_]*\.md\b`)
	// url is a link to another site; what it names is not checked.
	url = regexp.MustCompile(`[a-z][a-z0-9+.-]*://\S+`)
	// inlineLink is [text](target) or ![alt](target "title").
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink is a reference definition: [label]: target.
	refLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	// codeSpan is inline code, where brackets are not links.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	// heading is an ATX heading.
	heading = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	// scheme starts a link to another site (https:, mailto:).
	scheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// sources returns the Markdown and Go files of fsys, skipping hidden
// directories (.git) and vendor.
func sources(fsys fs.FS) ([]string, error) {
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor") {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".md") || strings.HasSuffix(p, ".go") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// problems returns one message per reference in fsys's Markdown and Go
// files to something fsys does not hold.
func problems(fsys fs.FS) ([]string, error) {
	files, err := sources(fsys)
	if err != nil {
		return nil, err
	}
	docs := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			docs[path.Base(f)] = true
		}
	}
	var bad []string
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		bad = append(bad, namedDocs(f, b, docs)...)
		if strings.HasSuffix(f, ".md") {
			bad = append(bad, brokenLinks(fsys, f, b)...)
		}
	}
	slices.Sort(bad)
	return bad, nil
}

// namedDocs reports every line of file that refers to the workspace
// beside the repository, or names a Markdown document the repository
// does not have.
func namedDocs(file string, b []byte, docs map[string]bool) []string {
	var bad []string
	for i, line := range lines(b) {
		if strings.Contains(line, outside) {
			bad = append(bad, fmt.Sprintf("%s:%d: refers to %s, which is not in the repository", file, i+1, outside))
		}
		names := docName.FindAllString(url.ReplaceAllString(line, ""), -1)
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			if !docs[name] {
				bad = append(bad, fmt.Sprintf("%s:%d: names %s, which is not in the repository", file, i+1, name))
			}
		}
	}
	return bad
}

// brokenLinks reports every relative link of the Markdown file that does
// not resolve to a file of fsys, or to a heading of it.
func brokenLinks(fsys fs.FS, file string, b []byte) []string {
	var bad []string
	for n, line := range prose(b) {
		if line == "" {
			continue
		}
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1])
		}
		if m := refLink.FindStringSubmatch(line); m != nil {
			targets = append(targets, m[1])
		}
		for _, t := range targets {
			if msg := checkLink(fsys, file, t); msg != "" {
				bad = append(bad, fmt.Sprintf("%s:%d: link %s: %s", file, n+1, t, msg))
			}
		}
	}
	return bad
}

// checkLink returns why target, a link in file, does not resolve, or "".
func checkLink(fsys fs.FS, file, target string) string {
	if target == "" {
		return "empty"
	}
	if scheme.MatchString(target) {
		return "" // another site
	}
	p, frag, _ := strings.Cut(target, "#")
	if p == "" {
		p = file
	} else if strings.HasPrefix(p, "/") {
		p = path.Clean(strings.TrimPrefix(p, "/"))
	} else {
		p = path.Join(path.Dir(file), p)
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "leaves the repository"
	}
	if _, err := fs.Stat(fsys, p); err != nil {
		return "no such file in the repository"
	}
	if frag == "" || !strings.HasSuffix(p, ".md") {
		return ""
	}
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return err.Error()
	}
	if !slices.Contains(anchors(b), frag) {
		return fmt.Sprintf("%s has no heading #%s", p, frag)
	}
	return ""
}

// anchors returns the fragment of every heading of a Markdown file, as
// GitHub makes them: lower case, punctuation dropped, spaces to hyphens,
// a repeat suffixed -1, -2, ...
func anchors(b []byte) []string {
	var out []string
	seen := map[string]int{}
	for _, line := range outsideFences(b) {
		m := heading.FindStringSubmatch(strings.ReplaceAll(line, "`", ""))
		if m == nil {
			continue
		}
		var s strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				s.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				s.WriteRune(r)
			}
		}
		a := s.String()
		if k := seen[a]; k > 0 {
			seen[a]++
			a += "-" + strconv.Itoa(k)
		} else {
			seen[a] = 1
		}
		out = append(out, a)
	}
	return out
}

// outsideFences returns the lines of a Markdown file with the lines of
// fenced code blocks blanked; line numbers are kept.
func outsideFences(b []byte) []string {
	ls := lines(b)
	fence := ""
	for i, line := range ls {
		t := strings.TrimLeft(line, " ")
		switch {
		case fence != "":
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
			ls[i] = ""
		case strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"):
			fence = t[:3]
			ls[i] = ""
		}
	}
	return ls
}

// prose is outsideFences with the brackets and parentheses of code spans
// made inert, so that code is never taken for a link.
func prose(b []byte) []string {
	ls := outsideFences(b)
	for i, line := range ls {
		ls[i] = codeSpan.ReplaceAllStringFunc(line, func(s string) string {
			return strings.Map(func(r rune) rune {
				if strings.ContainsRune("[]()`", r) {
					return ' '
				}
				return r
			}, s)
		})
	}
	return ls
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestRepositoryIsSelfContained(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	fsys := os.DirFS(root)
	files, err := sources(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, "README.md") || !slices.Contains(files, "docs/ARCHITECTURE.md") {
		t.Fatal("README.md or docs/ARCHITECTURE.md not found: the test is looking in the wrong place")
	}
	bad, err := problems(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range bad {
		t.Error(msg)
	}
}

// The checks themselves must catch what leaves the repository. (The
// fixtures name their documents in lower case, and build the upper-case
// one, so that this file names nothing itself.)
func TestProblemsCatchesBrokenReferences(t *testing.T) {
	notes := "NOTES" + ".md" // a document the repository does not have
	fsys := fstest.MapFS{
		"README.md": {Data: []byte(strings.Join([]string{
			"# Title",
			"See [the design](" + outside + "d.md) and [guide](docs/guide.md).", // 2: both
			"[missing](docs/none.md), [anchor](docs/guide.md#no-such-heading)",  // 3: both
			"[ok](docs/guide.md#a-heading-here) [self](#title) ![img](docs/a.png)",
			"`worker.Elems[float32](t)` is code, and so is [this](https://example.com/" + notes + ").",
			"```",
			"[in a block](nowhere.md)",
			"```",
			"[up](../elsewhere.md)", // 9
			"[ref]: docs/gone.md",   // 10
			"named in prose: " + notes + " and " + notes,
		}, "\n"))},
		"docs/guide.md": {Data: []byte("# Guide\n## A heading, here\n")},
		"docs/a.png":    {Data: []byte{0}},
		"pkg/x.go":      {Data: []byte("package pkg\n\n// See " + outside + "d.md and " + notes + ".\n")},
		".git/x.md":     {Data: []byte("[skipped](nowhere.md) " + notes)},
	}
	bad, err := problems(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:10: link docs/gone.md: no such file in the repository",
		"README.md:11: names " + notes + ", which is not in the repository",
		"README.md:2: link " + outside + "d.md: leaves the repository",
		"README.md:2: refers to " + outside + ", which is not in the repository",
		"README.md:3: link docs/guide.md#no-such-heading: docs/guide.md has no heading #no-such-heading",
		"README.md:3: link docs/none.md: no such file in the repository",
		"README.md:9: link ../elsewhere.md: leaves the repository",
		"pkg/x.go:3: names " + notes + ", which is not in the repository",
		"pkg/x.go:3: refers to " + outside + ", which is not in the repository",
	}
	if strings.Join(bad, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems =\n%s\nwant\n%s", strings.Join(bad, "\n"), strings.Join(want, "\n"))
	}
}

func TestAnchors(t *testing.T) {
	got := anchors([]byte("# Why tinylib/msgp and not X\n## Smart mode (default): serializable\n```\n# not a heading\n```\n## Durability (issue 5)\n## Durability (issue 5)\n### `Conn.Send` rules ##\n"))
	want := []string{"why-tinylibmsgp-and-not-x", "smart-mode-default-serializable", "durability-issue-5", "durability-issue-5-1", "connsend-rules"}
	if !slices.Equal(got, want) {
		t.Fatalf("anchors = %q, want %q", got, want)
	}
}

package observe

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// families returns the theus_ metric families /metrics serves.
func families(t *testing.T) []string {
	t.Helper()
	mfs, err := NewRegistry(&fakeSource{}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "theus_") {
			out = append(out, mf.GetName())
		}
	}
	return out
}

// docs/OPERATIONS.md lists every metric, and no metric that is not
// served.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	served := families(t)
	for _, name := range served {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/OPERATIONS.md does not describe %s", name)
		}
	}
	for _, m := range regexp.MustCompile("`(theus_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if !slices.Contains(served, m[1]) {
			t.Errorf("docs/OPERATIONS.md names %s, which /metrics does not serve", m[1])
		}
	}
}

// The alerting rules of docs/alerts.yml use only metrics that exist
// (a histogram's _bucket series included), and promtool accepts them.
func TestAlertRules(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("..", "docs", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	served := families(t)
	for _, m := range regexp.MustCompile(`theus_[a-z_]+`).FindAllString(string(rules), -1) {
		if name := strings.TrimSuffix(m, "_bucket"); !slices.Contains(served, name) && !slices.Contains(served, m) {
			t.Errorf("docs/alerts.yml uses %s, which /metrics does not serve", m)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("no promtool (Debian package prometheus): the rules' syntax is not checked")
	}
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join("..", "docs", "alerts.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

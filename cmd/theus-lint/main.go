// Command theus-lint checks theus processes written in Go against the
// POP rules (package lint; the table is in docs/GOVERNANCE.md).
//
//	theus-lint [-json] [-test=false] ./...       exit 1 on findings
//	go vet -vettool=$(which theus-lint) ./...
//
// Standalone, it prints "file:line:col: POP-XXX message" for each
// finding (a JSON array with -json) and exits 1 if there is any, 2 if
// the packages do not load. Run by go vet, it is a vet tool like any
// other (unitchecker), and go vet reports and exits.
package main

import (
	"os"
	"strings"

	"golang.org/x/tools/go/analysis/unitchecker"

	"github.com/theus-run/theus/lint"
)

func main() {
	if vetMode(os.Args[1:]) {
		unitchecker.Main(lint.Analyzers()...) // exits
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// vetMode reports whether go vet runs the tool: it asks for its version
// (-V=full) or flags (-flags), then gives it one vet.cfg per package.
func vetMode(args []string) bool {
	for _, a := range args {
		if a == "-flags" || strings.HasPrefix(a, "-V") {
			return true
		}
	}
	return len(args) > 0 && strings.HasSuffix(args[len(args)-1], ".cfg")
}

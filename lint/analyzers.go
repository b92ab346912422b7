package lint

import "golang.org/x/tools/go/analysis"

// The rule analyzers, one per POP rule; docs/GOVERNANCE.md has the table.
var (
	E01 = newRule("POP-E01", "a process writes to stdout (fmt.Print*, os.Stdout, print/println): stdout belongs to the protocol", runE01)
	E02 = newRule("POP-E02", "a process touches the file system (os.Open, os.WriteFile, io/ioutil, ...)", runE02)
	E03 = newRule("POP-E03", "a process uses the network (net, net/http, ...)", runE03)
	E04 = newRule("POP-E04", "a process writes a package-level variable: state outside the context", runE04)
	E05 = newRule("POP-E05", "a process writes through a read view (ctx.Raw bytes, ctx.Tensor data, ctx.Children values)", runE05)
	E06 = newRule("POP-E06", "a process ignores the error of ctx.Set, Delete, Append or Emit", runE06)
	E07 = newRule("POP-E07", "a process writes a CONST or META path, writes under a LOG other than by appending, or is PURE and writes a signal", runE07)
	E08 = newRule("POP-E08", "a value read from a PRIVATE path flows into an output", runE08)
	C01 = newRule("POP-C01", "a literal path a process reads or writes is not covered by its contract literal", runC01)
	W01 = newRule("POP-W01", "a process declares an input it never reads", runW01)
)

// Analyzers returns every rule analyzer, in rule order.
func Analyzers() []*analysis.Analyzer {
	return []*analysis.Analyzer{E01, E02, E03, E04, E05, E06, E07, E08, C01, W01}
}

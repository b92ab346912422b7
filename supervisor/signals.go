package supervisor

import (
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// signalWrite checks a process's write to a SIGNAL path: a signal is set
// to a JSON value; it is never deleted or appended to (there is nothing
// stored to delete or append to), and never holds a tensor.
func signalWrite(process string, path contract.Path, w protocol.Write) *protocol.Error {
	switch {
	case contract.Op(w.Op) != contract.OpSet:
		return &protocol.Error{Code: protocol.CodeContractViolation, Message: fmt.Sprintf("process %q: %s is a SIGNAL path: a signal is set, never %s (it is not stored)", process, path, contract.Op(w.Op)), Path: w.Path}
	case path.InZone(contract.ZoneHeavy):
		return &protocol.Error{Code: protocol.CodeBadTensor, Message: fmt.Sprintf("process %q: %s is a SIGNAL path: a signal never holds a tensor", process, path), Path: w.Path}
	case !json.Valid(w.Value):
		return &protocol.Error{Code: protocol.CodeProcessFailed, Message: fmt.Sprintf("process %q: the value for %s is not JSON: %v", process, w.Path, whyNotJSON(w.Value)), Path: w.Path}
	}
	return nil
}

package supervisor

import (
	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/protocol"
)

// opDigest binds req's op id to its call (cas.CallDigest). It is unknown
// (zero) for a request without an op id, which needs none.
func opDigest(req *protocol.Execute) cas.OpDigest {
	if req.OpID == "" {
		return cas.OpDigest{}
	}
	return cas.CallDigest(req.Process, req.Args)
}

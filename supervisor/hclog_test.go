package supervisor

import "github.com/hashicorp/go-hclog"

func quietHCLog() hclog.Logger { return hclog.NewNullLogger() }

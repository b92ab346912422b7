package ipc

import (
	"fmt"
	"net"
	"os"
)

// FileConn returns a Conn over the socket f. It dups f's descriptor, so
// the caller closes f when it no longer needs it.
func FileConn(f *os.File, o Options) (*Conn, error) {
	if o.Blocking {
		o.defaults()
		b, err := newBlockingFD(f, o.WriteTimeout) // dups: the caller still closes f
		if err != nil {
			return nil, err
		}
		return newConn(nil, b, b, o), nil
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc: %s: %w", f.Name(), err)
	}
	return NewConn(nc, o), nil
}

// Package e02 holds processes that touch the file system, and some that do not.
package e02

import (
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"

	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("files", worker.Contract{}, files),
		worker.Process("clean", worker.Contract{}, clean),
	}
}

func files(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	b, err := os.ReadFile("/etc/hosts") // want `POP-E02 os.ReadFile touches the file system`
	if err != nil {
		return worker.None{}, err
	}
	_ = ioutil.WriteFile("/tmp/x", b, 0o600) // want `POP-E02 ioutil.WriteFile touches the file system`
	return worker.None{}, save()
}

func save() error {
	f, err := os.Create("/tmp/y") // want `POP-E02 os.Create touches the file system`
	if err != nil {
		return err
	}
	return f.Close()
}

func clean(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	_ = filepath.Join("a", "b") // path arithmetic touches nothing
	_ = strings.ToUpper(os.Getenv("HOME"))
	return worker.None{}, nil
}

// Setup is no process: it may read files.
func Setup() ([]byte, error) { return os.ReadFile("/etc/hosts") }

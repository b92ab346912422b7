package pool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyExe copies the test binary (a worker when launched by a pool) into
// a temporary directory and returns the copy's path and checksum.
func copyExe(t *testing.T) (string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:])
}

// A pinned plugin is read and checked once: replacing or deleting the
// file afterwards changes nothing, restarts included.
func TestPinnedPluginSurvivesReplacement(t *testing.T) {
	for _, change := range []string{"replaced", "deleted"} {
		t.Run(change, func(t *testing.T) {
			path, sum := copyExe(t)
			p := start(t, 1, func(c *Config) {
				c.Command, c.Pin = []string{path}, strings.ToUpper(sum)
				c.RestartBackoff = 10 * time.Millisecond
			})
			if change == "replaced" {
				if err := os.WriteFile(path+".new", []byte("#!/bin/sh\nexit 7\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path+".new", path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			for range 2 { // two restarts from the sealed copy
				before := p.PIDs()
				syscall.Kill(before[0], syscall.SIGKILL)
				waitReplaced(t, p, before[0])
				res, err := dispatch(t, p, "noop", "")
				if err != nil || res.Err != nil {
					t.Fatalf("dispatch after the plugin was %s: %v %v", change, err, res)
				}
			}
		})
	}
}

func TestPinMismatchRefused(t *testing.T) {
	path, sum := copyExe(t)
	wrong := strings.Repeat("0", len(sum))
	_, err := Start(Config{Command: []string{path}, Pin: wrong})
	if !errors.Is(err, ErrPinMismatch) || !strings.Contains(err.Error(), sum) {
		t.Fatalf("Start = %v, want ErrPinMismatch naming the real sum", err)
	}
}

func TestParsePlugin(t *testing.T) {
	path, sum := copyExe(t)
	pl, err := ParsePlugin(path + "@sha256:" + strings.ToUpper(sum))
	if err != nil || pl.Command[0] != path || pl.Pin != sum {
		t.Fatalf("ParsePlugin = %+v, %v", pl, err)
	}
	if pl, err := ParsePlugin(path); err != nil || pl.Pin != "" {
		t.Fatalf("unpinned: %+v, %v", pl, err)
	}
	for _, bad := range []string{path + "@sha256:xyz", path + "@sha256:" + sum[:10], filepath.Dir(path), path + ".missing"} {
		if _, err := ParsePlugin(bad); err == nil {
			t.Errorf("ParsePlugin(%q) accepted", bad)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	p := start(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Close(ctx)
	p.Close(ctx) // and once more in the cleanup
}

package durable

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/theus-run/theus/cas"
)

// PendingName is the file in the state directory where a journal notes
// the backups it is writing, so that the next start can remove the
// temporary files of one a kill interrupted, wherever it was written.
const PendingName = "backups-in-progress"

// pending is that file: a line "+<quoted path>" before a backup to
// path is started (fsynced first), "-<quoted path>" once it ended; it is
// emptied whenever no backup is in progress.
type pending struct {
	dir string
	mu  struct {
		sync.Mutex
		f *os.File
		n int // backups in progress
	}
}

func (p *pending) note(sign byte, target string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.f == nil {
		f, err := os.OpenFile(filepath.Join(p.dir, PendingName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("durable: note a backup: %w", err)
		}
		if err := syncDir(p.dir); err != nil {
			f.Close()
			return err
		}
		p.mu.f = f
	}
	if _, err := fmt.Fprintf(p.mu.f, "%c%s\n", sign, strconv.Quote(target)); err != nil {
		return fmt.Errorf("durable: note a backup: %w", err)
	}
	if sign == '-' {
		if p.mu.n--; p.mu.n == 0 {
			p.mu.f.Truncate(0)
		}
		return nil
	}
	if err := p.mu.f.Sync(); err != nil {
		return fmt.Errorf("durable: note a backup: %w", err)
	}
	p.mu.n++
	return nil
}

func (p *pending) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.f == nil {
		return nil
	}
	err := p.mu.f.Close()
	p.mu.f = nil
	return err
}

// removeInterrupted removes the stale temporary files of the backups
// that the state directory's pending file says were in progress when
// the last journal stopped, and empties it. It returns what it removed.
func removeInterrupted(dir string) (removed []string) {
	path := filepath.Join(dir, PendingName)
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	open := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 {
			continue
		}
		target, err := strconv.Unquote(line[1:])
		if err != nil || !filepath.IsAbs(target) {
			continue
		}
		switch line[0] {
		case '+':
			open[target]++
		case '-':
			open[target]--
		}
	}
	for target, n := range open {
		if n > 0 {
			removed = append(removed, removeStaleTemps(filepath.Dir(target), filepath.Base(target))...)
		}
	}
	os.Truncate(path, 0)
	return removed
}

// WriteBackup is the package's WriteBackup, noted in the state
// directory while it runs: if the supervisor is killed meanwhile, the
// next start removes the backup's temporary file.
func (j *Journal) WriteBackup(path string, st cas.State) error {
	dir, name, err := backupTarget(path)
	if err != nil {
		return err
	}
	target := filepath.Join(dir, name)
	if err := j.pending.note('+', target); err != nil {
		return err
	}
	defer j.pending.note('-', target)
	removeStaleTemps(dir, name)
	return writeFile(dir, name, st)
}

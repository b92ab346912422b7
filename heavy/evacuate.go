package heavy

import (
	"fmt"

	"github.com/theus-run/theus/shm"
)

// Evacuee is a committed tensor in a dead worker's slab: it pins the
// whole slab until it is replaced, or moved by the supervisor.
type Evacuee struct {
	Path string
	Slab uint32
	Off  int64
	Gen  uint64
}

// Evacuees lists the committed tensors of dead workers' slabs.
func (z *Zone) Evacuees() []Evacuee {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []Evacuee
	for _, s := range z.slabs {
		if !s.retired {
			continue
		}
		for off, path := range s.paths {
			if b, err := s.alloc.Block(off); err == nil {
				out = append(out, Evacuee{Path: path, Slab: s.id, Off: off, Gen: b.Gen})
			}
		}
	}
	return out
}

// Move copies the committed tensor d (of a dead worker's slab) into the
// live slab with the most room, through the supervisor's own mappings,
// and returns its new descriptor and a Ref to Commit once the new
// descriptor is committed at path (or to Abort). The caller holds a
// snapshot that sees d, so d's block cannot be freed during the copy.
// This is the only copy the zone ever makes: it runs after a worker's
// death, so that a dead worker's slab does not pin its memory for as long
// as one of its tensors lives.
func (z *Zone) Move(d shm.Descriptor, path string) (shm.Descriptor, Ref, error) {
	z.mu.Lock()
	src, ok := z.slabs[d.Slab]
	if !ok || !src.retired {
		z.mu.Unlock()
		return d, Ref{}, fmt.Errorf("heavy: slab %d is not a dead worker's", d.Slab)
	}
	if _, err := d.Check(src.alloc, ""); err != nil {
		z.mu.Unlock()
		return d, Ref{}, err
	}
	var dst *Slab
	var room int64
	for _, s := range z.slabs {
		if s.retired || !s.sealed {
			continue
		}
		if free := s.alloc.Stats().LargestFree; free >= d.Len && free > room {
			dst, room = s, free
		}
	}
	if dst == nil {
		z.mu.Unlock()
		return d, Ref{}, fmt.Errorf("%w: no live slab has %d bytes free to move %s", shm.ErrArenaFull, d.Len, path)
	}
	b, err := dst.alloc.Alloc(max(d.Len, 1), invocationOwner("move"))
	z.mu.Unlock()
	if err != nil {
		return d, Ref{}, err
	}
	copy(dst.region.Bytes(b.Off, d.Len), src.region.Bytes(d.Off, d.Len))
	nd := d
	nd.Slab, nd.Off, nd.Gen = dst.id, b.Off, b.Gen
	return nd, Ref{slab: dst.id, off: b.Off, gen: b.Gen, path: path}, nil
}

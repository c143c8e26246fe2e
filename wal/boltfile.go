package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"strings"
)

// This file checks a bbolt file with plain reads before bbolt maps it. bbolt
// trusts its meta page: a file shorter than the meta page's high-water mark
// is mapped anyway, and touching a page past the end of the file kills the
// process with SIGBUS. The layout below is bbolt v1.5.0's
// internal/common/{page,meta}.go, which bbolt writes in the machine's byte
// order.

const (
	// boltMagic and boltVersion identify a bbolt data file (format 2).
	boltMagic   uint32 = 0xED0CDAED
	boltVersion uint32 = 2

	// boltPageHeaderSize is the size of a page header (id u64, flags u16,
	// count u16, overflow u32); the meta struct follows it.
	boltPageHeaderSize = 16

	// Offsets within the meta struct: magic u32, version u32, pageSize u32,
	// flags u32, root bucket {root pgid u64, sequence u64}, freelist pgid
	// u64, pgid (high-water mark) u64, txid u64, checksum u64. The checksum
	// is FNV-64a over the bytes before it.
	metaMagic    = 0
	metaVersion  = 4
	metaPageSize = 8
	metaRoot     = 16
	metaFreelist = 32
	metaPgid     = 40
	metaTxid     = 48
	metaChecksum = 56
	metaSize     = 64

	// boltNoFreelist is the freelist pgid of a file whose freelist is not
	// stored (Options.NoFreelistSync).
	boltNoFreelist = math.MaxUint64

	// boltMinPageSize and boltMaxPageSize bound the page sizes bbolt itself
	// looks for when meta page 0 is unreadable (1 KiB << 0..14).
	boltMinPageSize = 1 << 10
	boltMaxPageSize = 1 << 24
)

// boltMeta is the part of a bbolt meta page that the size check needs.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// parseBoltMeta decodes and validates the meta struct of the page that b
// starts with.
func parseBoltMeta(b []byte) (boltMeta, error) {
	if len(b) < boltPageHeaderSize+metaSize {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[boltPageHeaderSize : boltPageHeaderSize+metaSize]
	ne := binary.NativeEndian
	if v := ne.Uint32(m[metaMagic:]); v != boltMagic {
		return boltMeta{}, fmt.Errorf("bad magic %#08x", v)
	}
	if v := ne.Uint32(m[metaVersion:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("unsupported bbolt version %d", v)
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksum])
	if stored, sum := ne.Uint64(m[metaChecksum:]), h.Sum64(); stored != sum {
		return boltMeta{}, fmt.Errorf("meta checksum mismatch: stored %016x, computed %016x", stored, sum)
	}
	return boltMeta{
		pageSize: ne.Uint32(m[metaPageSize:]),
		root:     ne.Uint64(m[metaRoot:]),
		freelist: ne.Uint64(m[metaFreelist:]),
		pgid:     ne.Uint64(m[metaPgid:]),
		txid:     ne.Uint64(m[metaTxid:]),
	}, nil
}

// checkBoltFile checks the bbolt file at path before bbolt opens it: at
// least one valid meta page, and a file size that covers every page the
// newest valid meta page refers to. An empty or missing file passes (bbolt
// initialises it). Any other failure wraps ErrCorrupt and names the file.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	readMeta := func(off int64) (boltMeta, error) {
		var buf [boltPageHeaderSize + metaSize]byte
		if _, err := f.ReadAt(buf[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				return boltMeta{}, fmt.Errorf("no meta page at offset %d", off)
			}
			return boltMeta{}, err
		}
		return parseBoltMeta(buf[:])
	}

	// Meta page 0 is at offset 0 and tells the page size; meta page 1 is
	// the next page. When page 0 is damaged, look for page 1 at every page
	// size bbolt would try.
	var metas []boltMeta
	var problems []error
	m0, err0 := readMeta(0)
	if err0 == nil {
		if !validPageSize(m0.pageSize) {
			return corruptf("%s: meta page 0 has an invalid page size %d", path, m0.pageSize)
		}
		metas = append(metas, m0)
		if m1, err := readMeta(int64(m0.pageSize)); err == nil {
			metas = append(metas, m1)
		} else {
			problems = append(problems, fmt.Errorf("meta page 1: %w", err))
		}
	} else {
		problems = append(problems, fmt.Errorf("meta page 0: %w", err0))
		for ps := int64(boltMinPageSize); ps <= boltMaxPageSize && ps < size; ps <<= 1 {
			if m1, err := readMeta(ps); err == nil && int64(m1.pageSize) == ps {
				metas = append(metas, m1)
				break
			}
		}
		if len(metas) == 0 {
			problems = append(problems, errors.New("meta page 1: not found"))
		}
	}
	if len(metas) == 0 {
		return corruptf("%s is not a valid bbolt file (%d bytes): %v", path, size, joinErrors(problems))
	}

	// bbolt uses the valid meta page with the higher transaction id.
	m := metas[0]
	if len(metas) == 2 {
		if metas[1].pageSize != m.pageSize {
			return corruptf("%s: meta pages disagree on the page size: %d and %d", path, m.pageSize, metas[1].pageSize)
		}
		if metas[1].txid > m.txid {
			m = metas[1]
		}
	}
	if m.pgid < 2 || m.root >= m.pgid || (m.freelist >= m.pgid && m.freelist != boltNoFreelist) {
		return corruptf("%s: meta page (txid %d) is inconsistent: root page %d, freelist page %d, high-water mark %d",
			path, m.txid, m.root, m.freelist, m.pgid)
	}
	ps := uint64(m.pageSize)
	if m.pgid > math.MaxInt64/ps {
		return corruptf("%s: meta page (txid %d) has an impossible high-water mark %d", path, m.txid, m.pgid)
	}
	if need := int64(m.pgid * ps); size < need {
		return corruptf("%s is truncated: %d bytes, needs %d (%d pages of %d bytes)", path, size, need, m.pgid, ps)
	}
	if m.freelist != boltNoFreelist {
		if err := checkFreelist(f, m); err != nil {
			return corruptf("%s: freelist page %d: %v", path, m.freelist, err)
		}
	}
	return nil
}

// Page header fields (bbolt's common.Page) and the freelist page flag.
const (
	pageID       = 0  // u64
	pageFlags    = 8  // u16
	pageCount    = 10 // u16
	pageOverflow = 12 // u32

	boltFreelistFlag uint16 = 0x10
)

// checkFreelist checks the freelist page that m refers to: bbolt panics at
// Open on a page of another type, reads its page ids without bounds checks,
// and would later hand out a page id beyond the file or twice. The page
// must be a freelist page that names itself, fit within the file, and list
// strictly increasing page ids between 2 and the high-water mark.
func checkFreelist(f *os.File, m boltMeta) error {
	ps := int64(m.pageSize)
	var hdr [boltPageHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], int64(m.freelist)*ps); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	ne := binary.NativeEndian
	if id := ne.Uint64(hdr[pageID:]); id != m.freelist {
		return fmt.Errorf("the page says it is page %d", id)
	}
	if flags := ne.Uint16(hdr[pageFlags:]); flags != boltFreelistFlag {
		return fmt.Errorf("not a freelist page (flags %#x)", flags)
	}
	span := uint64(ne.Uint32(hdr[pageOverflow:])) + 1
	if m.freelist+span > m.pgid {
		return fmt.Errorf("spans %d pages, beyond the high-water mark %d", span, m.pgid)
	}
	body := make([]byte, int64(span)*ps-boltPageHeaderSize)
	if _, err := f.ReadAt(body, int64(m.freelist)*ps+boltPageHeaderSize); err != nil {
		return fmt.Errorf("read %d pages: %w", span, err)
	}
	count, first := uint64(ne.Uint16(hdr[pageCount:])), 0
	if count == 0xFFFF { // the count is the first element
		count, first = ne.Uint64(body), 1
	}
	if count > uint64(len(body)/8-first) {
		return fmt.Errorf("%d page ids do not fit in its %d page(s)", count, span)
	}
	prev := uint64(1)
	for i := range int(count) {
		id := ne.Uint64(body[(first+i)*8:])
		if id <= prev || id >= m.pgid {
			return fmt.Errorf("page id %d (element %d) is out of order or outside 2..%d", id, i, m.pgid-1)
		}
		prev = id
	}
	return nil
}

// validPageSize reports whether ps is a page size bbolt could have written.
func validPageSize(ps uint32) bool {
	return ps >= boltMinPageSize && ps <= boltMaxPageSize && ps&(ps-1) == 0
}

// joinErrors joins errs on one line: "a; b".
func joinErrors(errs []error) string {
	var b strings.Builder
	for i, err := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

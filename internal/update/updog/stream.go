package updog

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrVerify marks a target whose bytes are not the ones the repository signed.
var ErrVerify = errors.New("target failed verification")

// Progress is told how many compressed bytes of a target have arrived.
type Progress func(name string, done, total int64)

// StreamTarget downloads a target, checks it against its signed length and
// SHA-256 while it streams, decompresses it (zstd) and writes it into dst
// from offset 0, in constant memory. Bytes reach dst before the hash can be
// checked at the end of the stream, so the caller must only ever write into
// a partition that cannot boot, and mark it valid only when every target
// returned nil. A decompressed image larger than size is an error.
func (c *Client) StreamTarget(ctx context.Context, name string, dst io.WriterAt, size int64, progress Progress) error {
	ti, err := c.up.GetTargetInfo(name)
	if err != nil {
		return fmt.Errorf("target %s: %w", name, err)
	}
	want, ok := ti.Hashes["sha256"]
	if !ok {
		return fmt.Errorf("target %s has no sha256 in the signed metadata", name)
	}
	url := strings.TrimRight(c.cfg.TargetsBaseURL, "/") + "/" + hex.EncodeToString(want) + "." + name
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("target %s: %w", name, err)
	}
	// The client's overall timeout suits metadata, not a gigabyte image:
	// the context bounds the stream instead.
	hc := *c.cfg.HTTPClient
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", name, resp.Status)
	}
	return writeVerified(ctx, name, resp.Body, ti.Length, want, dst, size, progress)
}

// writeVerified is StreamTarget's pipeline over any reader.
func writeVerified(ctx context.Context, name string, body io.Reader, length int64, want []byte, dst io.WriterAt, size int64, progress Progress) error {
	h := sha256.New()
	counted := &countingReader{r: io.LimitReader(body, length+1), h: h, name: name, total: length, progress: progress, ctx: ctx}
	dec, err := zstd.NewReader(bufio.NewReaderSize(counted, 1<<20), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(32<<20))
	if err != nil {
		return err
	}
	defer dec.Close()
	w := &offsetWriter{dst: dst, limit: size}
	buf := make([]byte, 1<<20)
	_, copyErr := io.CopyBuffer(w, dec, buf)
	// Drain what the decoder did not need, so the hash covers every byte.
	if _, err := io.Copy(io.Discard, counted); err != nil && copyErr == nil {
		copyErr = err
	}
	switch {
	case counted.n > length:
		return fmt.Errorf("%w: %s is longer than its signed %d bytes", ErrVerify, name, length)
	case counted.n < length:
		return fmt.Errorf("%w: %s ended after %d of its signed %d bytes", ErrVerify, name, counted.n, length)
	case copyErr != nil && counted.n == length && !hashEqual(h, want):
		return fmt.Errorf("%w: %s does not match its signed sha256 (%v)", ErrVerify, name, copyErr)
	case copyErr != nil:
		return fmt.Errorf("write %s: %w", name, copyErr)
	case !hashEqual(h, want):
		return fmt.Errorf("%w: %s does not match its signed sha256", ErrVerify, name)
	}
	return nil
}

func hashEqual(h hash.Hash, want []byte) bool {
	got := h.Sum(nil)
	return hex.EncodeToString(got) == hex.EncodeToString(want)
}

type countingReader struct {
	r        io.Reader
	h        hash.Hash
	n, last  int64
	name     string
	total    int64
	progress Progress
	ctx      context.Context
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.progress != nil && (c.n-c.last >= 4<<20 || err == io.EOF) {
		c.progress(c.name, c.n, c.total)
		c.last = c.n
	}
	return n, err
}

// offsetWriter writes sequentially into a WriterAt, refusing to pass limit.
type offsetWriter struct {
	dst   io.WriterAt
	off   int64
	limit int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	if w.off+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("image is larger than its %d-byte partition", w.limit)
	}
	n, err := w.dst.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

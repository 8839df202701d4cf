package datasets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// streamParquet reads parquet shard idx row group by row group, reading only the image and caption
// columns, and calls emit for each row at offset (row index) from or later. The image column is either
// binary or a struct whose "bytes" field is binary (the Hugging Face datasets Image feature
// `{bytes, path}`); the caption column is a string or a list of strings.
func streamParquet(ctx context.Context, name string, idx, from int, cfg *Config, emit func(*rawSample) bool) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, shardErr(dropMissingFile, "%s", err)
		}
		return 0, shardErr(dropReadError, "%s", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, shardErr(dropReadError, "%s", err)
	}
	pf, err := parquet.OpenFile(f, fi.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, shardErr(dropReadError, "parquet %s: %v", name, err)
	}
	imgCol, err := findLeaf(pf.Schema(), cfg.ImageColumn, "bytes")
	if err != nil {
		return 0, shardErr(dropReadError, "parquet %s: image %v", name, err)
	}
	capCol, err := findLeaf(pf.Schema(), cfg.CaptionColumn, "")
	if err != nil {
		return 0, shardErr(dropReadError, "parquet %s: caption %v", name, err)
	}
	base := filepath.Base(name)
	n := 0
	for _, rg := range pf.RowGroups() {
		rows := int(rg.NumRows())
		if n+rows <= from {
			n += rows // the whole row group lies before the resume point
			continue
		}
		chunks := rg.ColumnChunks()
		img := &columnCursor{pages: chunks[imgCol.ColumnIndex].Pages(), leaf: imgCol}
		capt := &columnCursor{pages: chunks[capCol.ColumnIndex].Pages(), leaf: capCol}
		stop, err := func() (bool, error) {
			defer img.pages.Close()
			defer capt.pages.Close()
			for i := 0; i < rows; i++ {
				if ctx.Err() != nil {
					return true, nil
				}
				iv, err := img.nextRow()
				if err != nil {
					return true, err
				}
				cv, err := capt.nextRow()
				if err != nil {
					return true, err
				}
				off := n
				n++
				if off < from {
					continue
				}
				r := &rawSample{shard: idx, offset: off, key: fmt.Sprintf("%s/%d", base, off)}
				for _, v := range iv {
					if !v.IsNull() && v.DefinitionLevel() == imgCol.MaxDefinitionLevel {
						r.image = bytes.Clone(v.ByteArray())
					}
				}
				for _, v := range cv {
					if !v.IsNull() && v.DefinitionLevel() == capCol.MaxDefinitionLevel {
						r.captions = append(r.captions, string(v.ByteArray()))
					}
				}
				if !emit(r) {
					return true, nil
				}
			}
			return false, nil
		}()
		if err != nil {
			return n, shardErr(dropReadError, "parquet %s row %d: %v", name, n, err)
		}
		if stop {
			return n, nil
		}
	}
	return n, nil
}

// findLeaf finds the one leaf column under top-level column name (a plain column, a list's element,
// or, when there are several leaves, the struct field named field).
func findLeaf(schema *parquet.Schema, name, field string) (parquet.LeafColumn, error) {
	var leaves [][]string
	for _, path := range schema.Columns() {
		if len(path) > 0 && path[0] == name {
			leaves = append(leaves, path)
		}
	}
	pick := func(path []string) (parquet.LeafColumn, error) {
		leaf, ok := schema.Lookup(path...)
		if !ok {
			return leaf, fmt.Errorf("column %q not found", strings.Join(path, "."))
		}
		if leaf.Node.Type().Kind() != parquet.ByteArray {
			return leaf, fmt.Errorf("column %q is %v, want binary or string", strings.Join(path, "."), leaf.Node.Type())
		}
		return leaf, nil
	}
	switch {
	case len(leaves) == 1:
		return pick(leaves[0])
	case len(leaves) > 1 && field != "":
		for _, p := range leaves {
			if len(p) == 2 && p[1] == field {
				return pick(p)
			}
		}
	}
	cols := make([]string, len(schema.Columns()))
	for i, p := range schema.Columns() {
		cols[i] = strings.Join(p, ".")
	}
	return parquet.LeafColumn{}, fmt.Errorf("column %q not found or ambiguous (leaf columns: %s)", name, strings.Join(cols, ", "))
}

// columnCursor walks one column chunk value by value and groups the values into rows: a value with
// repetition level 0 starts a new row.
type columnCursor struct {
	pages parquet.Pages
	leaf  parquet.LeafColumn
	vals  []parquet.Value // the current page's values
	i     int
	row   []parquet.Value
}

// peek returns the next value without consuming it, reading pages as needed; io.EOF at the chunk end.
func (c *columnCursor) peek() (parquet.Value, error) {
	for c.i >= len(c.vals) {
		page, err := c.pages.ReadPage()
		if err != nil {
			return parquet.Value{}, err
		}
		c.vals = c.vals[:0]
		vr := page.Values()
		buf := make([]parquet.Value, 64)
		for {
			k, err := vr.ReadValues(buf)
			c.vals = append(c.vals, buf[:k]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return parquet.Value{}, err
			}
		}
		c.i = 0
	}
	return c.vals[c.i], nil
}

// nextRow returns the values of the next row: one value for a plain column, the elements (or one
// null) for a list.
func (c *columnCursor) nextRow() ([]parquet.Value, error) {
	c.row = c.row[:0]
	for {
		v, err := c.peek()
		if err == io.EOF && len(c.row) > 0 {
			return c.row, nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(c.row) > 0 && (c.leaf.MaxRepetitionLevel == 0 || v.RepetitionLevel() == 0) {
			return c.row, nil
		}
		c.row = append(c.row, v)
		c.i++
	}
}

package config

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Errors returned by this package; match them with errors.Is or errors.As.
var (
	// ErrInvalid means the configuration's content is wrong: bad syntax, an
	// unknown or missing attribute, a value out of range, a missing plugin
	// binary. The error is always a *DiagError listing every problem found.
	ErrInvalid = errors.New("config: invalid configuration")
)

// DiagError reports every problem found in a configuration file, each an HCL
// diagnostic whose Subject points at the offending file:line:column. It
// matches ErrInvalid with errors.Is, and errors.As can extract the
// hcl.Diagnostics it wraps.
type DiagError struct {
	// Diagnostics holds only error-severity diagnostics, sorted by position.
	Diagnostics hcl.Diagnostics

	// files holds the parsed source, so Format can quote the offending line.
	files map[string]*hcl.File
}

// Error returns one line per diagnostic, "file:line:col: summary: detail",
// in file order.
func (e *DiagError) Error() string {
	var b strings.Builder
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(diagLine(d))
	}
	return b.String()
}

// Unwrap returns ErrInvalid and the wrapped hcl.Diagnostics.
func (e *DiagError) Unwrap() []error { return []error{ErrInvalid, e.Diagnostics} }

// Format writes the diagnostics the way HCL tools do: each with the source
// line it concerns and the offending span underlined, wrapped at width
// columns (0 means no wrapping), in colour if color is set. It is meant for
// a terminal; Error is the compact form for logs.
func (e *DiagError) Format(w io.Writer, width uint, color bool) error {
	return hcl.NewDiagnosticTextWriter(w, e.files, width, color).WriteDiagnostics(e.Diagnostics)
}

func diagLine(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s: ", posString(*d.Subject))
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// posString is "file:line:col" for the start of r.
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// newDiagError keeps the error-severity diagnostics of diags, sorted by
// position, or returns nil if there are none.
func newDiagError(diags hcl.Diagnostics, files map[string]*hcl.File) *DiagError {
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *hcl.Diagnostic) int {
		ra, rb := subjectOf(a), subjectOf(b)
		if c := strings.Compare(ra.Filename, rb.Filename); c != 0 {
			return c
		}
		return ra.Start.Byte - rb.Start.Byte
	})
	return &DiagError{Diagnostics: errs, files: files}
}

func subjectOf(d *hcl.Diagnostic) hcl.Range {
	if d.Subject == nil {
		return hcl.Range{}
	}
	return *d.Subject
}

// diagAt returns an error diagnostic whose subject is rng.
func diagAt(rng hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	}
}

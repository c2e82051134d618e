// Command cuepos prints where every value of a CUE instance was written.
//
// `cue export` gives the values but no positions; pyagent needs the file:line:col of each
// value so that its own semantic checks can point at .cue lines. cuepos loads the same
// instance with the same cuelang.org/go module the pinned `cue` CLI is built from, walks
// the evaluated value and prints one JSON object:
//
//	{"values": [[path, file, line, col], ...]}
//
// A path is a list of field names (strings) and list indexes (numbers). Where a value has
// several conjuncts (a schema default and the user's value), the position in the user's
// own files wins over one in a dependency (anything under a cue.mod directory). Labels'
// positions are not printed: pyagent finds a label just before its value on the same line,
// which is much cheaper than asking the evaluator for every conjunct of every field.
//
// With -schema FILE (or - for stdin), an instance that is not already closed by #Swarm
// (the schema embedded beside other fields, or not imported at all) is also unified with
// the #Swarm of that file (pyagent passes the schema generated from its own models), so
// unknown fields are errors either way.
// Errors are printed to stderr in the same format as the cue command, with exit code 1;
// the positions are printed to stdout in any case.
//
// Usage: cuepos [-C dir] [-schema FILE] <cue args...> (files, a directory or a package).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"
)

type entry [4]any

type output struct {
	Values []entry `json:"values"`
}

func main() {
	args := os.Args[1:]
	dir, schemaFile := "", ""
	for len(args) >= 2 && (args[0] == "-C" || args[0] == "-schema") {
		if args[0] == "-C" {
			dir = args[1]
		} else {
			schemaFile = args[1]
		}
		args = args[2:]
	}
	ctx := cuecontext.New()
	insts := load.Instances(args, &load.Config{Dir: dir})
	if len(insts) != 1 {
		fail(fmt.Errorf("expected one CUE instance, got %d", len(insts)))
	}
	if insts[0].Err != nil {
		fail(insts[0].Err)
	}
	v := ctx.BuildInstance(insts[0])
	if v.Err() != nil {
		fail(v.Err())
	}
	// A spec that is already closed by #Swarm (`swarm.#Swarm & {...}`) needs no second
	// unification; an open one (the schema embedded beside other fields, or not imported
	// at all) is unified with pyagent's own #Swarm so unknown fields are still caught.
	if schemaFile != "" && v.Allows(cue.Str("pyagent-open-probe")) {
		var src []byte
		var err error
		if schemaFile == "-" {
			src, err = io.ReadAll(os.Stdin)
		} else {
			src, err = os.ReadFile(schemaFile)
		}
		if err != nil {
			fail(err)
		}
		schema := ctx.CompileBytes(src, cue.Filename("pyagent-schema.cue"))
		if schema.Err() != nil {
			fail(schema.Err())
		}
		v = schema.LookupPath(cue.ParsePath("#Swarm")).Unify(v)
	}
	// Positions are printed even when the value has errors: an error that CUE reports
	// without a position (an incomplete value) is then placed at the field's own position.
	w := &walker{}
	w.walk(v, []any{})
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(output{w.values}); err != nil {
		fail(err)
	}
	if err := v.Validate(cue.Concrete(true), cue.All()); err != nil {
		fail(err)
	}
}

func fail(err error) {
	cwd, _ := os.Getwd()
	errors.Print(os.Stderr, err, &errors.Config{Cwd: cwd})
	os.Exit(1)
}

type walker struct {
	values []entry
}

// isDependency reports whether a file belongs to an imported module rather than to the user.
func isDependency(file string) bool {
	slashed := filepath.ToSlash(file)
	return strings.Contains(slashed, "/cue.mod/") || strings.Contains(slashed, "/pkg/mod/") ||
		slashed == "pyagent-schema.cue"
}

// valuePos is where a value is written: for a field, the value after the colon.
func valuePos(v cue.Value) token.Pos {
	if f, ok := v.Source().(*ast.Field); ok && f.Value != nil && f.Value.Pos().IsValid() {
		return f.Value.Pos()
	}
	return v.Pos()
}

// best picks the position of v that a user should be shown.
func best(v cue.Value) token.Pos {
	p := valuePos(v)
	if p.IsValid() && !isDependency(p.Filename()) {
		return p
	}
	if op, parts := v.Expr(); op == cue.AndOp {
		for _, part := range parts {
			if q := valuePos(part); q.IsValid() && !isDependency(q.Filename()) {
				return q
			}
		}
	}
	return p
}

func record(list *[]entry, path []any, p token.Pos) {
	if !p.IsValid() {
		return
	}
	cp := make([]any, len(path))
	copy(cp, path)
	*list = append(*list, entry{cp, p.Filename(), p.Line(), p.Column()})
}

func (w *walker) walk(v cue.Value, path []any) {
	if d, ok := v.Default(); ok {
		v = d
	}
	record(&w.values, path, best(v))
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			sel := it.Selector()
			child := append(path, sel.Unquoted())
			w.walk(it.Value(), child)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			return
		}
		for i := 0; it.Next(); i++ {
			w.walk(it.Value(), append(path, i))
		}
	}
}

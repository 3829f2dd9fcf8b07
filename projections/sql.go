package projections

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// Migration is one schema step of a projection version, rendered for a
// dialect: ID is the file name without ".sql" (and without the dialect
// suffix), SQL the statements.
type Migration struct {
	ID  string
	SQL string
}

// LoadMigrations reads the *.sql files at the root of fsys (see
// Projection.Migrations), picks the dialect's variant of each, renders the
// templates for (name, version) and returns them in ID order. A nil fsys
// has no migrations.
func LoadMigrations(fsys fs.FS, d Dialect, name string, version int) ([]Migration, error) {
	if fsys == nil {
		return nil, nil
	}
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("projection %s migrations: %w", name, err)
	}
	chosen := map[string]string{} // id -> file
	for _, f := range files {
		base := strings.TrimSuffix(f, ".sql")
		id, dialect, hasDialect := strings.Cut(base, ".")
		switch {
		case !hasDialect:
			if _, ok := chosen[id]; !ok {
				chosen[id] = f
			}
		case Dialect(dialect) == d:
			chosen[id] = f
		case dialect != string(SQLite) && dialect != string(Postgres):
			return nil, fmt.Errorf("projection %s migration %s: unknown dialect %q", name, f, dialect)
		}
	}
	ids := make([]string, 0, len(chosen))
	for id := range chosen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	funcs := template.FuncMap{"table": func(t string) (string, error) {
		if err := validateTable(t); err != nil {
			return "", err
		}
		return TableName(name, version, t), nil
	}}
	out := make([]Migration, 0, len(ids))
	for _, id := range ids {
		f := chosen[id]
		src, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("projection %s migration %s: %w", name, f, err)
		}
		tmpl, err := template.New(path.Base(f)).Funcs(funcs).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("projection %s migration %s: %w", name, f, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, struct{ Dialect Dialect }{d}); err != nil {
			return nil, fmt.Errorf("projection %s migration %s: %w", name, f, err)
		}
		out = append(out, Migration{ID: id, SQL: b.String()})
	}
	return out, nil
}

// Rebind rewrites '?' placeholders outside quotes and comments to
// PostgreSQL's $1, $2, ...; sinks call it, handlers never need to.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) && query[j] != c {
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UpsertSQL returns a multi-row INSERT for rows rows of u into the physical
// table, with '?' placeholders, and its ON CONFLICT clause. Sinks use it
// to implement Tx.Upsert.
func UpsertSQL(table string, u Upsert, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" AS cur (")
	b.WriteString(strings.Join(u.Columns, ", "))
	b.WriteString(") VALUES ")
	row := "(" + strings.Repeat("?, ", len(u.Columns)-1) + "?)"
	b.Grow(rows * (len(row) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(OnConflictSQL(u))
	return b.String()
}

// OnConflictSQL returns u's " ON CONFLICT (...) DO ..." clause.
func OnConflictSQL(u Upsert) string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (")
	b.WriteString(strings.Join(u.Key, ", "))
	b.WriteString(") DO ")
	if u.OnConflict == DoNothing {
		b.WriteString("NOTHING")
		return b.String()
	}
	b.WriteString("UPDATE SET ")
	set := u.Set
	if len(set) == 0 {
		for _, c := range u.Columns {
			if !slices.Contains(u.Key, c) {
				set = append(set, c+" = excluded."+c)
			}
		}
	}
	if len(set) == 0 { // every column is part of the key
		return " ON CONFLICT (" + strings.Join(u.Key, ", ") + ") DO NOTHING"
	}
	b.WriteString(strings.Join(set, ", "))
	return b.String()
}

// ValidateUpsert checks u and the shape of rows.
func ValidateUpsert(u Upsert, rows [][]any) error {
	if err := validateTable(u.Table); err != nil {
		return fmt.Errorf("upsert: %w", err)
	}
	if len(u.Columns) == 0 || len(u.Key) == 0 {
		return fmt.Errorf("upsert into %s: need columns and key", u.Table)
	}
	for _, c := range append(slices.Clip(u.Columns), u.Key...) {
		if !nameRE.MatchString(c) {
			return fmt.Errorf("upsert into %s: bad column name %q", u.Table, c)
		}
	}
	for i, r := range rows {
		if len(r) != len(u.Columns) {
			return fmt.Errorf("upsert into %s: row %d has %d values, want %d", u.Table, i, len(r), len(u.Columns))
		}
	}
	return nil
}

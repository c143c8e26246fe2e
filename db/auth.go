package db

import (
	"fmt"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"
)

// policy is what a connection lets a statement do. SQLite asks the
// authorizer while it compiles a statement, so the decision is SQLite's own
// reading of the statement, never a match on its text.
type policy uint8

const (
	// policyInternal allows everything: the node's own statements.
	policyInternal policy = iota
	// policyWrite allows what a replicated write may do (DESIGN.md
	// "Deterministic replay": no ATTACH, temp objects, transaction control,
	// PRAGMA outside the read allow-list, load_extension, _walship tables).
	policyWrite
	// policyRead allows reading only.
	policyRead
	// policyClassify records and allows everything: the statement is
	// prepared to be classified, never stepped.
	policyClassify
	// policyApply allows everything and records what the statement does:
	// a logged entry is applied as the master accepted it, never judged
	// again (the policy is the master's, when it accepts a request).
	policyApply
)

// authState is the authorizer's policy and what it saw of the statement
// being prepared.
type authState struct {
	policy  policy
	schema  bool   // a CREATE/ALTER/DROP action was seen
	dml     bool   // the statement itself (not a trigger) inserts, updates or deletes rows
	insert  bool   // the statement itself inserts rows
	writes  bool   // any action that changes the database was seen
	refused string // the first refused action, why
	// nodeLocal says why the statement reads something whose value
	// differs between nodes (walship's own tables, the file's pages);
	// "" if it reads nothing of the kind. A write that does is refused:
	// a replica would store other values than the master.
	nodeLocal string
	pragma    string // the PRAGMA the statement runs, "" if none (or one that sets a header field)
	// header is set when the statement sets user_version or
	// application_id: fields of the database header that migrations keep,
	// replicated like any write.
	header bool
	// analyze is set when the statement runs ANALYZE or REINDEX, whose
	// work follows the order of SQLite's in-memory schema (resetSchema).
	analyze bool
	// statWrite is set when the statement writes sqlite_stat* tables
	// itself: SQLite reads them into its query planner only when it loads
	// the schema (resetSchema).
	statWrite bool
}

func (a *authState) reset(p policy) { *a = authState{policy: p} }

// writeRefusal says why a compiled statement that is not read-only may not
// run as a replicated write, "" if it may. vacuum says whether its program
// runs VACUUM (stmt.vacuums): that write names nothing to the authorizer.
func (a *authState) writeRefusal(vacuum bool) string {
	switch {
	case a.nodeLocal != "":
		return a.nodeLocal
	case a.pragma != "":
		return fmt.Sprintf("PRAGMA %s is not allowed in a write: it may change the database file or the connection; run it as a query "+
			"(user_version and application_id may be set)", a.pragma)
	case vacuum:
		return "VACUUM is not allowed: it rewrites or copies the whole database file outside the log"
	}
	return ""
}

// readPragmas may be run as queries (without a value). pragmasWithArg take
// a table, index or count as their argument and stay read-only with it.
var (
	readPragmas = map[string]bool{
		"application_id": true, "collation_list": true, "compile_options": true,
		"data_version": true, "database_list": true, "encoding": true,
		"foreign_key_check": true, "foreign_key_list": true, "foreign_keys": true,
		"freelist_count": true, "function_list": true, "index_info": true,
		"index_list": true, "index_xinfo": true, "integrity_check": true,
		"journal_mode": true, "module_list": true, "page_count": true,
		"page_size": true, "pragma_list": true, "quick_check": true,
		"recursive_triggers": true, "schema_version": true, "table_info": true,
		"table_list": true, "table_xinfo": true, "user_version": true,
	}
	pragmasWithArg = map[string]bool{
		"foreign_key_check": true, "foreign_key_list": true, "index_info": true,
		"index_list": true, "index_xinfo": true, "integrity_check": true,
		"quick_check": true, "table_info": true, "table_list": true, "table_xinfo": true,
	}
	// headerPragmas may be set in a write: they store a number in the
	// database header, the same on every node, and migration tools keep
	// the schema's version there.
	headerPragmas = map[string]bool{"user_version": true, "application_id": true}
	// nodeLocalTables are tables (mostly virtual) whose content differs
	// between nodes holding the same data: the file's pages and layout,
	// its change counter, its path, walship's own position in the log.
	nodeLocalTables = map[string]string{
		"sqlite_dbpage":         "sqlite_dbpage holds the raw pages of this node's file",
		"dbstat":                "dbstat describes the layout of this node's file",
		"pragma_data_version":   "data_version differs between nodes",
		"pragma_database_list":  "database_list names this node's file",
		"pragma_page_count":     "page_count describes this node's file",
		"pragma_freelist_count": "freelist_count describes this node's file",
	}
	// fileModules are virtual table modules that read or write the
	// database file itself.
	fileModules = map[string]bool{"dbstat": true, "sqlite_dbpage": true}
	// refusedFuncs are functions no replicated write may call: their result
	// depends on the node or the connection's history, or they reach outside
	// the database.
	refusedFuncs = map[string]string{
		"load_extension": "load_extension() is not allowed",
		"total_changes":  "total_changes() is not allowed in writes: it counts the changes of the connection's whole life, which differs between nodes",
	}
)

func isSQLiteName(name string) bool {
	return len(name) >= 7 && strings.EqualFold(name[:7], "sqlite_")
}

func isInternalName(name string) bool {
	return len(name) >= 8 && strings.EqualFold(name[:8], "_walship")
}

// changesSchemaOrRows reports whether action creates, alters or drops an
// object, or changes rows.
func changesSchemaOrRows(action int32) bool {
	switch action {
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
		sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TRIGGER,
		sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE,
		sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_ALTER_TABLE,
		sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE, sqlite3.SQLITE_ANALYZE, sqlite3.SQLITE_REINDEX:
		return true
	}
	return false
}

// clientParse reports whether SQLite is compiling the caller's statement
// now (with its triggers), rather than a statement of SQLite's own or of a
// module: FTS5, for one, prepares statements on the same connection while
// a client's statement is prepared or runs (PRAGMA data_version when it is
// compiled again after a schema change, reads and writes of its shadow
// tables). Those are not the client's: they are neither judged nor
// recorded. The caller's statement is compiled by prepare (a top-level
// parse), or again by SQLite while step runs it (its parse then names it
// as the statement it re-prepares); a trigger's code is compiled in a
// sub-parse of the statement's own.
func (c *conn) clientParse() bool {
	p := (*sqlite3.Tsqlite3)(ptr(c.db)).FpParse
	if p == 0 {
		return true
	}
	pp := (*sqlite3.TParse)(ptr(p))
	if pp.FpToplevel != 0 {
		pp = (*sqlite3.TParse)(ptr(pp.FpToplevel))
	}
	if pp.FpOuterParse != 0 {
		return false // prepared while another statement was compiled
	}
	if c.stepping != 0 {
		return pp.FpReprepare == c.stepping
	}
	return true
}

// authorize is SQLite's authorizer for c: it records what the statement does
// and refuses what the policy forbids.
func (c *conn) authorize(action int32, arg1, arg2, dbName, trigger string) int32 {
	if c.auth.policy != policyInternal && !c.clientParse() {
		return sqlite3.SQLITE_OK
	}
	a := &c.auth
	deny := func(why string) int32 {
		if a.refused == "" {
			a.refused = why
		}
		if a.policy == policyClassify {
			return sqlite3.SQLITE_OK
		}
		return sqlite3.SQLITE_DENY
	}
	switch action {
	case sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TRIGGER,
		sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE,
		sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_ALTER_TABLE,
		sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE:
		a.writes = true
		if !isSQLiteName(arg1) {
			a.schema = true
		}
	case sqlite3.SQLITE_ANALYZE, sqlite3.SQLITE_REINDEX:
		a.writes = true
		a.analyze = true
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE:
		a.writes = true
		if len(arg1) >= 11 && strings.EqualFold(arg1[:11], "sqlite_stat") {
			a.statWrite = true
		}
		if trigger == "" && !isSQLiteName(arg1) {
			a.dml = true
			a.insert = a.insert || action == sqlite3.SQLITE_INSERT
		}
	case sqlite3.SQLITE_READ:
		if a.nodeLocal == "" {
			if isInternalName(arg1) {
				a.nodeLocal = fmt.Sprintf("a write may not read %s: walship's own table is not the same on every node while entries are applied", arg1)
			} else if why, ok := nodeLocalTables[strings.ToLower(arg1)]; ok {
				a.nodeLocal = "a write may not read " + arg1 + ": " + why
			}
		}
	case sqlite3.SQLITE_FUNCTION:
		if a.nodeLocal == "" && strings.EqualFold(arg2, "sqlite_offset") {
			a.nodeLocal = "a write may not call sqlite_offset(): it tells where a row is in this node's file"
		}
	case sqlite3.SQLITE_PRAGMA:
		if arg2 != "" && headerPragmas[strings.ToLower(arg1)] {
			a.header, a.writes = true, true
		} else {
			a.pragma = arg1
		}
	}
	if a.policy == policyInternal || a.policy == policyApply {
		return sqlite3.SQLITE_OK
	}
	// CREATE TABLE temp.x names the temp schema instead of saying TEMP:
	// SQLite then asks for SQLITE_CREATE_TABLE in database "temp". (Its
	// own statements update sqlite_temp_master, on ALTER TABLE … RENAME.)
	if strings.EqualFold(dbName, "temp") && changesSchemaOrRows(action) && !isSQLiteName(arg1) {
		return deny("temporary objects are not allowed: they live in one connection of one node")
	}
	switch action {
	case sqlite3.SQLITE_ATTACH:
		return deny("ATTACH is not allowed: every node holds exactly one database")
	case sqlite3.SQLITE_DETACH:
		return deny("DETACH is not allowed")
	case sqlite3.SQLITE_CREATE_TEMP_INDEX, sqlite3.SQLITE_CREATE_TEMP_TABLE,
		sqlite3.SQLITE_CREATE_TEMP_TRIGGER, sqlite3.SQLITE_CREATE_TEMP_VIEW,
		sqlite3.SQLITE_DROP_TEMP_INDEX, sqlite3.SQLITE_DROP_TEMP_TABLE,
		sqlite3.SQLITE_DROP_TEMP_TRIGGER, sqlite3.SQLITE_DROP_TEMP_VIEW:
		return deny("temporary objects are not allowed: they live in one connection of one node")
	case sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT:
		return deny("transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) is not allowed: a transaction cannot span requests; send the statements in one request as a transaction instead")
	case sqlite3.SQLITE_PRAGMA:
		name := strings.ToLower(arg1)
		if arg2 != "" && headerPragmas[name] {
			if a.policy == policyRead {
				return deny("a query may not change the database")
			}
			return sqlite3.SQLITE_OK
		}
		if name == "foreign_keys" && arg2 != "" {
			return deny("PRAGMA foreign_keys is not allowed here: foreign keys are enforced on every node; " +
				"a dump that turns them off loads whole, its PRAGMA foreign_keys=OFF first and BEGIN … COMMIT around the rest (walship load FILE sends one so)")
		}
		if !readPragmas[name] || (arg2 != "" && !pragmasWithArg[name]) {
			return deny(fmt.Sprintf("PRAGMA %s is not allowed: only read-only PRAGMAs may be run (and user_version or application_id set), and connection settings are the same on every node", arg1))
		}
		return sqlite3.SQLITE_OK
	case sqlite3.SQLITE_FUNCTION:
		name := strings.ToLower(arg2)
		if why, ok := refusedFuncs[name]; ok && (a.policy != policyRead || name == "load_extension") {
			return deny(why)
		}
		return sqlite3.SQLITE_OK
	case sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE:
		return sqlite3.SQLITE_OK
	}
	if a.policy == policyRead {
		return deny("a query may not change the database")
	}
	switch action {
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
		sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TRIGGER,
		sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE,
		sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_ALTER_TABLE:
		// arg1 is the table (or index, trigger, view) name; sqlite_master
		// itself is written by every CREATE and is fine.
		table := arg1
		if action == sqlite3.SQLITE_ALTER_TABLE {
			table = arg2 // arg1 is the database
		}
		if isInternalName(table) {
			return deny(fmt.Sprintf("%s is walship's own table and cannot be changed", table))
		}
		if strings.EqualFold(arg1, "sqlite_dbpage") {
			return deny("sqlite_dbpage cannot be changed: it writes raw pages of the database file")
		}
		if (action == sqlite3.SQLITE_CREATE_INDEX || action == sqlite3.SQLITE_CREATE_TRIGGER ||
			action == sqlite3.SQLITE_DROP_INDEX || action == sqlite3.SQLITE_DROP_TRIGGER) && isInternalName(arg2) {
			return deny(fmt.Sprintf("%s is walship's own table and cannot be changed", arg2))
		}
		return sqlite3.SQLITE_OK
	case sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE:
		// arg2 is the module.
		if fileModules[strings.ToLower(arg2)] {
			return deny(fmt.Sprintf("virtual tables using %s are not allowed: they read this node's file, which differs between nodes", arg2))
		}
		return sqlite3.SQLITE_OK
	case sqlite3.SQLITE_ANALYZE, sqlite3.SQLITE_REINDEX:
		return sqlite3.SQLITE_OK
	}
	return deny(fmt.Sprintf("operation %d is not allowed", action))
}

//! The SQL that drops a table's indexes before a bulk load and builds them again after it, in
//! the load's transaction (as pgcopydb does): one sorted build per index is cheaper than
//! maintaining every index row by row during the COPY.

use super::{quote_ident, quote_literal, Flavour, QualifiedName};

/// Every index of one table (`$1` schema, `$2` name) with what it takes to build it again:
/// name, `pg_get_indexdef`, the constraint it backs (name, `pg_get_constraintdef`), its
/// tablespace (`''` for the database's: neither definition names it), CLUSTER mark, replica
/// identity, the comments on the index and on the constraint, and why it must stay (NULL: it
/// may be rebuilt).
///
/// No rows at all — the table keeps its indexes — when the table is not a plain table, has
/// inheritance parents or children (partitions on PostgreSQL 10+ and Greenplum: their indexes
/// come from the parent's, with generated names that a rebuild would not give back), or when
/// the role does not own it (TRUNCATE needs a privilege, DROP INDEX ownership: a load that
/// works today must not start failing).
///
/// An index stays when something else depends on it: a foreign key references it (a
/// self-referencing table; a table referenced from another cannot be truncated at all), or
/// anything else a DROP without CASCADE would refuse; and when it is not valid (left by a
/// failed `CREATE INDEX CONCURRENTLY`: a rebuild would make it valid, i.e. change it).
/// The constraint an index backs is found through `pg_depend` (the index depends on it,
/// `deptype 'i'`), which every version since 7.3 records, so this also reads 8.2.
pub fn table_indexes(flavour: Flavour) -> String {
    // pg_index.indisreplident is 9.4+.
    let replident = if flavour.kernel() >= 94 { "i.indisreplident" } else { "false" };
    format!(
        "SELECT ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid), con.conname::text,
       CASE WHEN con.oid IS NOT NULL THEN pg_catalog.pg_get_constraintdef(con.oid) END,
       coalesce(ts.spcname::text, ''), i.indisclustered, {replident},
       pg_catalog.obj_description(i.indexrelid, 'pg_class'),
       CASE WHEN con.oid IS NOT NULL THEN pg_catalog.obj_description(con.oid, 'pg_constraint') END,
       CASE WHEN NOT i.indisvalid THEN 'it is not valid'
            WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                         WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indexrelid
                           AND d.deptype IN ('n', 'a'))
            THEN 'another object depends on it (a foreign key referencing it)'
       END,
       con.contype::text, coalesce(con.condeferrable, false), coalesce(con.condeferred, false),
       ic.reloptions IS NOT NULL
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = ic.reltablespace
LEFT JOIN pg_catalog.pg_depend cd ON cd.classid = 'pg_catalog.pg_class'::regclass AND cd.objid = i.indexrelid
     AND cd.refclassid = 'pg_catalog.pg_constraint'::regclass AND cd.deptype = 'i'
LEFT JOIN pg_catalog.pg_constraint con ON con.oid = cd.refobjid
WHERE i.indrelid = (
    SELECT c.oid FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'
      AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid))
ORDER BY ic.relname"
    )
}

/// The constraint an index backs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConstraint {
    /// Its name.
    pub name: String,
    /// `pg_get_constraintdef`: `PRIMARY KEY (id)`, `EXCLUDE USING gist (…)`; without the index's
    /// storage parameters (the function leaves them out).
    pub definition: String,
    /// `p` primary key, `u` unique, `x` exclusion.
    pub kind: String,
    /// `DEFERRABLE`, `INITIALLY DEFERRED`.
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`.
    pub deferred: bool,
}

/// One index of the target as [`table_indexes`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIndex {
    /// The index's name (in the table's schema).
    pub name: String,
    /// `CREATE [UNIQUE] INDEX … ON schema.table …`, tablespace left out.
    pub definition: String,
    /// The constraint the index backs (primary key, unique, exclusion).
    pub constraint: Option<IndexConstraint>,
    /// The index's tablespace, empty for the database's default.
    pub tablespace: String,
    /// `ALTER TABLE … CLUSTER ON` this index.
    pub clustered: bool,
    /// `REPLICA IDENTITY USING INDEX` this index.
    pub replica_identity: bool,
    /// `COMMENT ON INDEX`.
    pub comment: Option<String>,
    /// `COMMENT ON CONSTRAINT`.
    pub constraint_comment: Option<String>,
    /// Why the index must stay as it is; `None` when it may be dropped and rebuilt.
    pub kept_because: Option<String>,
    /// The index has storage parameters (`WITH (fillfactor = …)`).
    pub has_options: bool,
}

impl TableIndex {
    /// Whether the constraint is rebuilt as the index ([`TableIndex::definition`], which keeps
    /// its storage parameters) and then `ADD CONSTRAINT … USING INDEX` (9.1+, primary key and
    /// unique only); else from the constraint's definition.
    fn constraint_from_index(&self, flavour: Flavour) -> bool {
        flavour.kernel() >= 91 && self.constraint.as_ref().is_some_and(|c| c.kind == "p" || c.kind == "u")
    }

    /// Why the index must stay, given what the server can rebuild: the reason read from the
    /// catalog, or storage parameters that only a path the server lacks would keep.
    pub fn kept_on(&self, flavour: Flavour) -> Option<String> {
        if let Some(why) = &self.kept_because {
            return Some(why.clone());
        }
        if self.constraint.is_some() && self.has_options && !self.constraint_from_index(flavour) {
            return Some("its storage parameters would not survive a rebuild of its constraint on this server".into());
        }
        None
    }

    /// What to call it in messages: the index, and the constraint when it backs one by
    /// another name.
    pub fn describe(&self) -> String {
        match &self.constraint {
            Some(c) if c.name != self.name => {
                format!("index {} (constraint {})", quote_ident(&self.name), quote_ident(&c.name))
            }
            Some(_) => format!("constraint {}", quote_ident(&self.name)),
            None => format!("index {}", quote_ident(&self.name)),
        }
    }

    /// Drops the index, or the constraint it backs (which drops the index).
    pub fn drop_statement(&self, table: &QualifiedName) -> String {
        match &self.constraint {
            Some(c) => format!("ALTER TABLE {} DROP CONSTRAINT {}", table.quoted(), quote_ident(&c.name)),
            None => format!("DROP INDEX {}.{}", quote_ident(&table.schema), quote_ident(&self.name)),
        }
    }

    /// Builds the index again as it was: in its tablespace (`default_tablespace`, as pg_dump
    /// does, since neither definition names it), under its name, with its constraint, comments,
    /// CLUSTER mark and replica identity. Run together: one index per round trip, so that a
    /// failure names the index.
    pub fn rebuild_statements(&self, table: &QualifiedName, flavour: Flavour) -> Vec<String> {
        let t = table.quoted();
        let index = format!("{}.{}", quote_ident(&table.schema), quote_ident(&self.name));
        let mut sql = vec![format!("SET LOCAL default_tablespace = {}", quote_literal(&self.tablespace, false))];
        match &self.constraint {
            Some(c) => {
                let con = quote_ident(&c.name);
                if self.constraint_from_index(flavour) {
                    sql.push(self.definition.clone());
                    let kind = if c.kind == "p" { "PRIMARY KEY" } else { "UNIQUE" };
                    let deferrable = match (c.deferrable, c.deferred) {
                        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
                        (true, false) => " DEFERRABLE",
                        _ => "",
                    };
                    sql.push(format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {con} {kind} USING INDEX {}{deferrable}",
                        quote_ident(&self.name)
                    ));
                } else {
                    sql.push(format!("ALTER TABLE {t} ADD CONSTRAINT {con} {}", c.definition));
                }
                // Either way the index ends up with the constraint's name.
                if c.name != self.name {
                    sql.push(format!(
                        "ALTER INDEX {}.{con} RENAME TO {}",
                        quote_ident(&table.schema),
                        quote_ident(&self.name)
                    ));
                }
                if let Some(comment) = &self.constraint_comment {
                    sql.push(format!("COMMENT ON CONSTRAINT {con} ON {t} IS {}", quote_literal(comment, false)));
                }
            }
            None => sql.push(self.definition.clone()),
        }
        if let Some(c) = &self.comment {
            sql.push(format!("COMMENT ON INDEX {index} IS {}", quote_literal(c, false)));
        }
        if self.clustered {
            sql.push(format!("ALTER TABLE {t} CLUSTER ON {}", quote_ident(&self.name)));
        }
        if self.replica_identity {
            sql.push(format!("ALTER TABLE {t} REPLICA IDENTITY USING INDEX {}", quote_ident(&self.name)));
        }
        sql
    }
}

/// `SET LOCAL maintenance_work_mem`: the memory each index build may sort in (on Greenplum,
/// per segment).
pub fn maintenance_work_mem(value: &str) -> String {
    format!("SET LOCAL maintenance_work_mem = {}", quote_literal(value, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(constraint: Option<(&str, &str)>) -> TableIndex {
        TableIndex {
            name: "Dim pk".into(),
            definition: "CREATE UNIQUE INDEX \"Dim pk\" ON s.t USING btree (id)".into(),
            constraint: constraint.map(|(name, definition)| IndexConstraint {
                name: name.into(),
                definition: definition.into(),
                kind: "p".into(),
                deferrable: true,
                deferred: false,
            }),
            tablespace: "fast".into(),
            clustered: true,
            replica_identity: false,
            comment: Some("it's the key".into()),
            constraint_comment: None,
            kept_because: None,
            has_options: true,
        }
    }

    #[test]
    fn rebuilds_a_plain_index_in_its_tablespace_with_comment_and_cluster_mark() {
        let t = QualifiedName::parse("s.t").unwrap();
        let i = index(None);
        assert_eq!(i.drop_statement(&t), "DROP INDEX \"s\".\"Dim pk\"");
        assert_eq!(
            i.rebuild_statements(&t, Flavour::Gp6),
            [
                "SET LOCAL default_tablespace = 'fast'",
                "CREATE UNIQUE INDEX \"Dim pk\" ON s.t USING btree (id)",
                "COMMENT ON INDEX \"s\".\"Dim pk\" IS 'it''s the key'",
                "ALTER TABLE \"s\".\"t\" CLUSTER ON \"Dim pk\"",
            ]
        );
    }

    #[test]
    fn rebuilds_a_constraint_under_its_index_name() {
        let t = QualifiedName::parse("s.t").unwrap();
        let i = index(Some(("t_pkey", "PRIMARY KEY (id)")));
        assert_eq!(i.drop_statement(&t), "ALTER TABLE \"s\".\"t\" DROP CONSTRAINT \"t_pkey\"");
        // 9.1+: the index as it was (storage parameters included), then the constraint on it.
        let sql = i.rebuild_statements(&t, Flavour::Gp6);
        assert_eq!(sql[1], "CREATE UNIQUE INDEX \"Dim pk\" ON s.t USING btree (id)");
        assert_eq!(
            sql[2],
            "ALTER TABLE \"s\".\"t\" ADD CONSTRAINT \"t_pkey\" PRIMARY KEY USING INDEX \"Dim pk\" DEFERRABLE"
        );
        assert_eq!(sql[3], "ALTER INDEX \"s\".\"t_pkey\" RENAME TO \"Dim pk\"");
        assert_eq!(i.describe(), "index \"Dim pk\" (constraint \"t_pkey\")");
        assert_eq!(i.kept_on(Flavour::Gp6), None);
        // 8.2: from the constraint's definition, which would lose the storage parameters.
        let sql = i.rebuild_statements(&t, Flavour::Gp4);
        assert_eq!(sql[1], "ALTER TABLE \"s\".\"t\" ADD CONSTRAINT \"t_pkey\" PRIMARY KEY (id)");
        assert!(i.kept_on(Flavour::Gp4).is_some());
    }
}

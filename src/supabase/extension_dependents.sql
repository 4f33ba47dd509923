-- The objects of the imported schemas ($2) that depend on the extensions $1 (those the target
-- lacks), with everything that depends on them in turn; one row per object:
--   catalog oid, object oid, extension, kind, name, why, shown (false for parts named through
--   their owner: a view's rule, a table's row type, an array type, a constraint's index, a
--   foreign key's internal triggers).
-- Found in pg_depend: columns and types using the extensions' types, indexes using their operator
-- classes or access methods, functions whose signature (or SQL-standard body) uses them, and what
-- depends on those. pg_depend has nothing on other function bodies (plpgsql, or SQL written as a
-- string): those are found by name, when the body calls one of the extensions' functions whose
-- name no other function has (`extensions.http_get(` or `http_get(`).
WITH RECURSIVE missing AS (
    SELECT oid, extname::text AS extname FROM pg_extension WHERE extname = ANY($1)
),
members AS (
    SELECT d.classid, d.objid, m.extname
      FROM pg_depend d JOIN missing m ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = m.oid
     WHERE d.deptype = 'e'
    UNION
    SELECT 'pg_type'::regclass::oid, t.typarray, m.extname
      FROM pg_depend d JOIN missing m ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = m.oid
      JOIN pg_type t ON d.classid = 'pg_type'::regclass AND t.oid = d.objid
     WHERE d.deptype = 'e' AND t.typarray <> 0
),
-- Every dependency, as the object itself and as the object it is part of (a view for its rule,
-- a table for its default, CHECK constraint or row type, a composite type for its relation, a
-- domain for its constraint, a constraint for its index, a type for its array type): pg_dump
-- writes most of these parts inside their owner's entry, and what depends on the owner is found.
dep AS (
    SELECT d.refclassid, d.refobjid, d.classid AS raw_class, d.objid AS raw_obj, d.objsubid, v.classid, v.objid
      FROM pg_depend d
      CROSS JOIN LATERAL (SELECT
            (SELECT r.ev_class FROM pg_rewrite r
              WHERE d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid AND r.rulename = '_RETURN') AS view,
            (SELECT a.adrelid FROM pg_attrdef a WHERE d.classid = 'pg_attrdef'::regclass AND a.oid = d.objid) AS def_table,
            (SELECT t.typrelid FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
              WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid AND c.relkind <> 'c') AS row_table,
            (SELECT c.reltype FROM pg_class c
              WHERE d.classid = 'pg_class'::regclass AND c.oid = d.objid AND c.relkind = 'c') AS composite,
            (SELECT k.oid FROM pg_constraint k
              WHERE d.classid = 'pg_class'::regclass AND k.conindid = d.objid AND k.contype IN ('p', 'u', 'x')) AS constraint_,
            (SELECT e.oid FROM pg_type e WHERE d.classid = 'pg_type'::regclass AND e.typarray = d.objid) AS element,
            (SELECT k.conrelid FROM pg_constraint k WHERE d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
                AND k.contype = 'c' AND k.conrelid <> 0) AS check_table,
            (SELECT k.contypid FROM pg_constraint k WHERE d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
                AND k.contypid <> 0) AS domain
      ) o
      CROSS JOIN LATERAL (VALUES
            (d.classid, d.objid),
            (CASE WHEN o.view IS NOT NULL OR o.def_table IS NOT NULL OR o.row_table IS NOT NULL
                       OR o.check_table IS NOT NULL THEN 'pg_class'::regclass::oid
                  WHEN o.composite IS NOT NULL OR o.element IS NOT NULL OR o.domain IS NOT NULL THEN 'pg_type'::regclass::oid
                  WHEN o.constraint_ IS NOT NULL THEN 'pg_constraint'::regclass::oid
                  ELSE d.classid END,
             coalesce(o.view, o.def_table, o.row_table, o.check_table, o.composite, o.element, o.domain,
                      o.constraint_, d.objid))
      ) v(classid, objid)
     WHERE d.deptype IN ('n', 'a', 'i')
),
-- Function bodies that call the extensions' functions by a name no other function has.
body AS (
    SELECT 'pg_proc'::regclass::oid AS classid, p.oid AS objid, m.extname,
           'its body calls ' || string_agg(DISTINCT f.proname::text || '()', ', ') AS why
      FROM members m
      JOIN pg_proc f ON m.classid = 'pg_proc'::regclass AND f.oid = m.objid
      JOIN pg_proc p ON p.prosrc ~* ('\m' || f.proname || '\s*\(')
      JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = ANY($2)
     WHERE f.proname ~ '^[a-z_][a-z0-9_]*$'
       AND p.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('c', 'internal'))
       AND NOT EXISTS (SELECT FROM pg_proc o WHERE o.proname = f.proname
                          AND NOT EXISTS (SELECT FROM members x WHERE x.classid = 'pg_proc'::regclass AND x.objid = o.oid))
     GROUP BY p.oid, m.extname
),
found(classid, objid, extname, why, direct) AS (
    SELECT dep.classid, dep.objid, m.extname,
           CASE WHEN dep.raw_class = 'pg_class'::regclass AND dep.objsubid <> 0
                THEN format('column %s: %s', (SELECT quote_ident(attname) FROM pg_attribute
                                               WHERE attrelid = dep.raw_obj AND attnum = dep.objsubid),
                            pg_describe_object(m.classid, m.objid, 0))
                ELSE 'uses ' || pg_describe_object(m.classid, m.objid, 0) END,
           true
      FROM members m JOIN dep ON dep.refclassid = m.classid AND dep.refobjid = m.objid
    UNION
    SELECT classid, objid, extname, why, true FROM body
    UNION
    SELECT dep.classid, dep.objid, f.extname, 'depends on ' || pg_describe_object(f.classid, f.objid, 0), false
      FROM found f JOIN dep ON dep.refclassid = f.classid AND dep.refobjid = f.objid
     WHERE (dep.classid, dep.objid) <> (f.classid, f.objid)
),
one AS (
    SELECT DISTINCT ON (classid, objid) classid, objid, extname, why
      FROM found
     WHERE NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = found.classid AND e.objid = found.objid AND e.deptype = 'e')
       AND classid <> 'pg_extension'::regclass
     ORDER BY classid, objid, direct DESC,
              CASE WHEN why LIKE 'column %' THEN 0 WHEN why LIKE 'uses type %' THEN 1
                   WHEN why LIKE 'uses operator class %' THEN 2 ELSE 3 END, why
)
SELECT one.classid, one.objid, one.extname, i.type, replace(i.identity, 'pg_catalog.', ''), one.why,
       one.classid NOT IN ('pg_rewrite'::regclass, 'pg_attrdef'::regclass)
       AND NOT (one.classid = 'pg_type'::regclass AND EXISTS (
                SELECT FROM pg_type t WHERE t.oid = one.objid
                   AND (t.typrelid <> 0 OR EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid))))
       AND NOT (one.classid = 'pg_class'::regclass AND EXISTS (
                SELECT FROM pg_constraint k WHERE k.conindid = one.objid AND k.contype IN ('p', 'u', 'x')))
       AND NOT (one.classid = 'pg_trigger'::regclass AND EXISTS (
                SELECT FROM pg_trigger t WHERE t.oid = one.objid AND t.tgisinternal))
  FROM one
  CROSS JOIN LATERAL pg_identify_object(one.classid, one.objid, 0) i
 WHERE coalesce(i.schema, (SELECT n.nspname FROM pg_namespace n WHERE n.oid = CASE one.classid
            WHEN 'pg_policy'::regclass THEN (SELECT c.relnamespace FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE p.oid = one.objid)
            WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.oid = one.objid)
            WHEN 'pg_rewrite'::regclass THEN (SELECT c.relnamespace FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = one.objid)
            WHEN 'pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid WHERE a.oid = one.objid)
            END)) = ANY($2)
 ORDER BY 7 DESC, 4, 5

-- What the API roles and PUBLIC ($2: role names) may do on every schema of $1, and on every
-- table, sequence and function in them (extension members left out): one row per object and
-- grantee, `kind schema.name` (functions with their argument types), the grantee (`PUBLIC` for
-- PUBLIC) and its privileges in alphabetical order. An object that has never been granted on
-- has the built-in default (acldefault): functions are executable by PUBLIC.
-- Names are printed with search_path = pg_catalog by the caller, so types are schema-qualified.
WITH objects AS (
    SELECT 'schema ' || quote_ident(n.nspname) AS object, coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
      FROM pg_namespace n
     WHERE n.nspname = ANY($1)
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' ELSE 'table ' END
           || quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
           || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           coalesce(p.proacl, acldefault('f', p.proowner))
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = ANY($1)
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
)
SELECT o.object,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE r.rolname::text END AS grantee,
       string_agg(DISTINCT a.privilege_type, ',' ORDER BY a.privilege_type) AS privileges
  FROM objects o, aclexplode(o.acl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE a.grantee = 0 OR r.rolname = ANY($2)
 GROUP BY 1, 2
 ORDER BY 1, 2

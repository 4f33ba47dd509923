-- What the API roles ($2: anon, authenticated, service_role, authenticator) and PUBLIC may do on
-- objects of the imported schemas ($1), as statements to replay on the target after a restore
-- that stripped all privileges (objects then have the built-in defaults: functions executable by
-- PUBLIC, schema public usable by PUBLIC). Ordered: REVOKEs of those defaults where the source
-- has not got them, then GRANTs, then default privileges.
-- Default privileges are replayed for db_migrator, which owns the imported objects: per schema
-- from any role's, and for the whole database from the roles that own objects of the imported
-- schemas (a global entry replaces the built-in default, so PUBLIC's missing EXECUTE is revoked).
WITH grantees AS (
    SELECT 0::oid AS oid, 'PUBLIC' AS name
    UNION ALL
    SELECT oid, quote_ident(rolname) FROM pg_roles WHERE rolname = ANY($2)
), owners AS (
    SELECT c.relowner AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1)
    UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1)
    UNION SELECT nspowner FROM pg_namespace WHERE nspname = ANY($1)
), user_functions AS (
    SELECT p.*, n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = ANY($1)
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
)
SELECT stmt FROM (
    SELECT DISTINCT 1 AS step, format('REVOKE EXECUTE ON ROUTINE %I.%I(%s) FROM PUBLIC', p.nspname, p.proname,
                  pg_get_function_identity_arguments(p.oid)) AS stmt
      FROM user_functions p
     WHERE NOT EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0)
    UNION ALL
    SELECT DISTINCT 1, format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', n.nspname)
      FROM pg_namespace n
     WHERE n.nspname = ANY($1)
       AND NOT EXISTS (SELECT FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE a.grantee = 0)
    UNION ALL
    SELECT DISTINCT 2, format('GRANT %s ON SCHEMA %I TO %s', a.privilege_type, n.nspname, g.name)
      FROM pg_namespace n, aclexplode(n.nspacl) a JOIN grantees g ON g.oid = a.grantee
     WHERE n.nspname = ANY($1)
    UNION ALL
    SELECT DISTINCT 2, format('GRANT %s ON %s %I.%I TO %s', a.privilege_type,
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname, g.name)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
           aclexplode(c.relacl) a JOIN grantees g ON g.oid = a.grantee
     WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT DISTINCT 2, format('GRANT %s (%I) ON TABLE %I.%I TO %s', a.privilege_type, att.attname, n.nspname, c.relname, g.name)
      FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
           aclexplode(att.attacl) a JOIN grantees g ON g.oid = a.grantee
     WHERE n.nspname = ANY($1) AND att.attacl IS NOT NULL
    UNION ALL
    SELECT DISTINCT 2, format('GRANT %s ON ROUTINE %I.%I(%s) TO %s', a.privilege_type, p.nspname, p.proname,
                  pg_get_function_identity_arguments(p.oid), g.name)
      FROM user_functions p, aclexplode(p.proacl) a JOIN grantees g ON g.oid = a.grantee
    UNION ALL
    SELECT DISTINCT 3, format('ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator IN SCHEMA %I GRANT %s ON %s TO %s',
                  n.nspname, a.privilege_type,
                  CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                       WHEN 'f' THEN 'FUNCTIONS' ELSE 'TYPES' END, g.name)
      FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace,
           aclexplode(d.defaclacl) a JOIN grantees g ON g.oid = a.grantee
     WHERE n.nspname = ANY($1) AND d.defaclobjtype IN ('r', 'S', 'f', 'T')
    UNION ALL
    SELECT DISTINCT 3, format('ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator GRANT %s ON %s TO %s',
                  a.privilege_type,
                  CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                       WHEN 'f' THEN 'FUNCTIONS' ELSE 'TYPES' END, g.name)
      FROM pg_default_acl d, aclexplode(d.defaclacl) a JOIN grantees g ON g.oid = a.grantee
     WHERE d.defaclnamespace = 0 AND d.defaclrole IN (SELECT oid FROM owners) AND d.defaclobjtype IN ('r', 'S', 'f', 'T')
    UNION ALL
    SELECT DISTINCT 3, format('ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator REVOKE %s ON %s FROM PUBLIC',
                  CASE d.defaclobjtype WHEN 'f' THEN 'EXECUTE' ELSE 'USAGE' END,
                  CASE d.defaclobjtype WHEN 'f' THEN 'FUNCTIONS' ELSE 'TYPES' END)
      FROM pg_default_acl d
     WHERE d.defaclnamespace = 0 AND d.defaclrole IN (SELECT oid FROM owners) AND d.defaclobjtype IN ('f', 'T')
       AND NOT EXISTS (SELECT FROM aclexplode(d.defaclacl) a WHERE a.grantee = 0)
) g ORDER BY step, stmt

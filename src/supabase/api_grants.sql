-- What the API roles ($2: anon, authenticated, service_role) may do on objects of the imported
-- schemas ($1), as GRANT statements to replay on the target after a restore that stripped all
-- privileges. Default privileges are replayed for db_migrator, which owns the imported objects.
SELECT DISTINCT stmt FROM (
    SELECT format('GRANT %s ON SCHEMA %I TO %I', a.privilege_type, n.nspname, r.rolname) AS stmt
      FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE n.nspname = ANY($1) AND r.rolname = ANY($2)
    UNION ALL
    SELECT format('GRANT %s ON %s %I.%I TO %I', a.privilege_type,
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname, r.rolname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
           aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE n.nspname = ANY($1) AND r.rolname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT format('GRANT %s (%I) ON TABLE %I.%I TO %I', a.privilege_type, att.attname, n.nspname, c.relname, r.rolname)
      FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
           aclexplode(att.attacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE n.nspname = ANY($1) AND r.rolname = ANY($2) AND att.attacl IS NOT NULL
    UNION ALL
    SELECT format('GRANT %s ON ROUTINE %I.%I(%s) TO %I', a.privilege_type, n.nspname, p.proname,
                  pg_get_function_identity_arguments(p.oid), r.rolname)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
           aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE n.nspname = ANY($1) AND r.rolname = ANY($2)
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator IN SCHEMA %I GRANT %s ON %s TO %I',
                  n.nspname, a.privilege_type,
                  CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                       WHEN 'f' THEN 'FUNCTIONS' ELSE 'TYPES' END, r.rolname)
      FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace,
           aclexplode(d.defaclacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE n.nspname = ANY($1) AND r.rolname = ANY($2) AND d.defaclobjtype IN ('r', 'S', 'f', 'T')
) g ORDER BY 1

-- A "Supabase-like" source database for the import tests, built like a hosted project: the
-- bootstrap superuser is `supabase_admin`; this file runs as `postgres` while it is still a
-- superuser, and the test then demotes `postgres` to NOSUPERUSER BYPASSRLS as on Supabase. It holds
-- Supabase's roles (with their attributes, memberships and the API roles' statement_timeout), its
-- auth / storage / extensions schemas (a faithful subset of their tables and functions), and an
-- application with RLS policies calling auth.uid(), foreign keys to auth.users, a trigger on
-- auth.users, the Realtime publication, an event trigger, an enum, jsonb, a view, SECURITY DEFINER
-- functions (one granted only to `authenticated`, after `ALTER DEFAULT PRIVILEGES REVOKE EXECUTE
-- ON FUNCTIONS FROM PUBLIC`), a table only `service_role` reaches (RLS with no policy), a pgvector
-- column with an HNSW index, an `http` call, sequences (serial and identity) and a few thousand rows.

-- Supabase's roles.
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
CREATE ROLE supabase_auth_admin NOLOGIN NOINHERIT CREATEROLE;
CREATE ROLE supabase_storage_admin NOLOGIN NOINHERIT;
CREATE ROLE supabase_realtime_admin NOLOGIN;
GRANT anon, authenticated, service_role TO authenticator;
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
ALTER ROLE authenticator SET statement_timeout = '8s';

CREATE SCHEMA extensions;
CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;
CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
CREATE EXTENSION citext WITH SCHEMA extensions;
CREATE EXTENSION vector WITH SCHEMA extensions;
CREATE EXTENSION http WITH SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;

-- auth (GoTrue's tables, trimmed).
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE TABLE auth.users (
    instance_id uuid,
    id uuid NOT NULL PRIMARY KEY,
    aud varchar(255),
    role varchar(255),
    email varchar(255),
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    created_at timestamptz,
    updated_at timestamptz,
    phone text UNIQUE DEFAULT NULL,
    phone_confirmed_at timestamptz,
    confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    is_anonymous boolean NOT NULL DEFAULT false
);
CREATE INDEX users_instance_id_idx ON auth.users (instance_id);
CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_anonymous = false;
CREATE TABLE auth.sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at timestamptz
);
CREATE TABLE auth.audit_log_entries (instance_id uuid, id uuid PRIMARY KEY, payload json);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, postgres;
ALTER TABLE auth.users OWNER TO supabase_auth_admin;
ALTER TABLE auth.sessions OWNER TO supabase_auth_admin;
GRANT ALL ON ALL TABLES IN SCHEMA auth TO postgres;

-- storage (trimmed), with a user policy on storage.objects.
CREATE SCHEMA storage AUTHORIZATION supabase_storage_admin;
CREATE TABLE storage.buckets (id text PRIMARY KEY, name text NOT NULL, public boolean DEFAULT false);
CREATE TABLE storage.objects (
    id uuid PRIMARY KEY DEFAULT extensions.uuid_generate_v4(),
    bucket_id text REFERENCES storage.buckets (id),
    name text,
    owner uuid
);
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY "avatars are public" ON storage.objects FOR SELECT USING (bucket_id = 'avatars');

-- realtime's schema, empty here.
CREATE SCHEMA realtime AUTHORIZATION supabase_realtime_admin;

-- The application: public and app.
CREATE TYPE public.todo_status AS ENUM ('open', 'doing', 'done');
CREATE TABLE public.profiles (
    id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    username extensions.citext UNIQUE,
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY "profiles are readable" ON public.profiles FOR SELECT TO anon, authenticated USING (true);
CREATE POLICY "own profile" ON public.profiles FOR UPDATE TO authenticated USING (auth.uid() = id);

CREATE SCHEMA app;
CREATE TABLE app.todos (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id),
    title text NOT NULL,
    status public.todo_status NOT NULL DEFAULT 'open',
    meta jsonb,
    secret_hash text DEFAULT extensions.crypt('x', extensions.gen_salt('bf', 4)),
    created_at timestamptz DEFAULT now()
);
CREATE INDEX todos_user_idx ON app.todos (user_id);
ALTER TABLE app.todos ENABLE ROW LEVEL SECURITY;
CREATE POLICY "own todos" ON app.todos FOR ALL TO authenticated
    USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);
CREATE TABLE app.avatars (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid REFERENCES auth.users (id),
    bucket_id text REFERENCES storage.buckets (id),
    path text
);
CREATE VIEW app.open_todos WITH (security_invoker = true) AS
    SELECT id, user_id, title FROM app.todos WHERE status <> 'done';

CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    INSERT INTO public.profiles (id, username) VALUES (new.id, new.raw_user_meta_data ->> 'username');
    RETURN new;
END
$$;
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users
    FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();

CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    new.meta := coalesce(new.meta, '{}'::jsonb) || jsonb_build_object('touched', true);
    RETURN new;
END
$$;
CREATE TRIGGER todos_touch BEFORE UPDATE ON app.todos FOR EACH ROW EXECUTE FUNCTION app.touch();

-- Functions from here on are not executable by PUBLIC (a hardened project's default).
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
CREATE FUNCTION app.todo_count_of(uid uuid) RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = '' AS $$ SELECT count(*) FROM app.todos WHERE user_id = uid $$;
GRANT EXECUTE ON FUNCTION app.todo_count_of(uuid) TO authenticated;

-- Written only by service_role: RLS on, no policy (BYPASSRLS is the way in).
CREATE TABLE app.audit_events (
    id bigserial PRIMARY KEY,
    kind text NOT NULL UNIQUE,
    payload jsonb NOT NULL DEFAULT '{}'
);
ALTER TABLE app.audit_events ENABLE ROW LEVEL SECURITY;

-- pgvector: a column, an HNSW index and a search function; http: a function that calls out.
CREATE TABLE app.documents (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    embedding extensions.vector(3) NOT NULL
);
CREATE INDEX documents_embedding_idx ON app.documents USING hnsw (embedding extensions.vector_cosine_ops);
CREATE FUNCTION app.match_documents(query extensions.vector(3), n integer) RETURNS SETOF app.documents
    LANGUAGE sql STABLE AS $$
    SELECT * FROM app.documents ORDER BY embedding OPERATOR(extensions.<=>) query LIMIT n
$$;
GRANT EXECUTE ON FUNCTION app.match_documents(extensions.vector, integer) TO authenticated, service_role;
CREATE FUNCTION app.fetch_status(url text) RETURNS integer LANGUAGE sql AS $$
    SELECT status FROM extensions.http_get(url)
$$;

CREATE PUBLICATION supabase_realtime FOR TABLE app.todos;
CREATE FUNCTION extensions.notify_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end EXECUTE FUNCTION extensions.notify_ddl();

-- Supabase's grants for the API roles: everything in public (policies decide), and what the
-- application granted in app.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA app TO anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO authenticated, service_role;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA app TO authenticated, service_role;

-- Data: 2000 users (the trigger makes their profiles), 6000 todos, a bucket, 500 avatars.
INSERT INTO auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, email_confirmed_at)
SELECT '00000000-0000-0000-0000-000000000000', md5('user' || g)::uuid, 'authenticated', 'authenticated',
       'user' || g || '@example.com', jsonb_build_object('username', 'user' || g), now(), now()
  FROM generate_series(1, 2000) g;
INSERT INTO auth.sessions SELECT md5('session' || g)::uuid, md5('user' || g)::uuid, now() FROM generate_series(1, 100) g;
INSERT INTO app.todos (user_id, title, status, meta)
SELECT md5('user' || (g % 2000 + 1))::uuid, 'todo ' || g,
       (ARRAY['open', 'doing', 'done']::public.todo_status[])[g % 3 + 1],
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b'))
  FROM generate_series(1, 6000) g;
INSERT INTO storage.buckets VALUES ('avatars', 'avatars', true);
INSERT INTO storage.objects (bucket_id, name, owner) SELECT 'avatars', 'a' || g, md5('user' || g)::uuid FROM generate_series(1, 50) g;
INSERT INTO app.avatars (user_id, bucket_id, path)
SELECT md5('user' || g)::uuid, 'avatars', 'avatars/' || g || '.png' FROM generate_series(1, 500) g;
INSERT INTO app.audit_events (kind, payload) SELECT 'event ' || g, jsonb_build_object('n', g) FROM generate_series(1, 300) g;
INSERT INTO app.documents (body, embedding)
SELECT 'doc ' || g, ('[' || g || ',' || (g % 7) || ',1]')::extensions.vector FROM generate_series(1, 200) g;

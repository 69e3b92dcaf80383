-- Fills eda.wpp_fdefect_f_n with :rows deterministic pseudo-random rows spread evenly over the
-- day starting at :'day' (every evt_timestamp is in [day, day + 1 day); some fall exactly on
-- hour boundaries, which exercises half-open windows). Eight defects per glass.
-- Text covers what breaks naive CSV handling: Chinese, commas, double quotes, newlines, CR,
-- tabs, backslashes, empty strings next to NULLs. Runs on PostgreSQL 9.4 (GP6) and later.
--
--   psql -v ON_ERROR_STOP=1 -v rows=200000 -v day='2024-01-01' -f scripts/sql/generate.sql
\set ON_ERROR_STOP on
SELECT setseed(0.2024) \gset
INSERT INTO eda.wpp_fdefect_f_n
SELECT
    format('%s%s%s', (ARRAY['A', 'B', 'C'])[1 + g % 3], chr(65 + (g / 3) % 26), lpad(g::text, 9, '0')),
    seq,
    (ARRAY['B1', 'B2', 'B4', 'B7', 'B11'])[1 + g % 5],
    CASE WHEN r1 < 0.02 THEN NULL ELSE 'D' || lpad((floor(r2 * 300))::int::text, 3, '0') END,
    ts,
    CASE WHEN r1 BETWEEN 0.02 AND 0.03 THEN NULL ELSE r2 * 2200.0 - 1100.0 END,
    CASE WHEN r1 BETWEEN 0.02 AND 0.03 THEN NULL ELSE r3 * 1850.0 - 925.0 END,
    CASE WHEN r1 BETWEEN 0.03 AND 0.06 THEN NULL ELSE round((r3 * r3 * 500)::numeric, 3) END,
    CASE WHEN r1 BETWEEN 0.06 AND 0.11 THEN NULL
         ELSE (ARRAY['合格', '不良', '待判定', '复判OK', '报废 (scrap)', 'NG-亮点'])[1 + floor(r4 * 6)::int] END,
    CASE floor(r4 * 1000)::int % 12
        WHEN 0 THEN NULL
        WHEN 1 THEN ''
        WHEN 2 THEN 'scratch, near edge, lot ' || (g % 97)
        WHEN 3 THEN 'operator said "recheck" twice'
        WHEN 4 THEN E'line one\nline two'
        WHEN 5 THEN E'tab\there, backslash \\ and slash /'
        WHEN 6 THEN '亮点, 暗点 "重判"; 备注'
        WHEN 7 THEN E'windows line\r\nend'
        WHEN 8 THEN '\N is not null'
        WHEN 9 THEN 'a,b,"c",''d'''
        WHEN 10 THEN repeat('mura ', 1 + g % 20)
        ELSE 'ok'
    END,
    (ts + interval '7 minutes')::timestamptz
FROM (
    SELECT i / 8 AS g,
           (i % 8) + 1 AS seq,
           :'day'::timestamp + date_trunc('milliseconds', (i * 86400.0 / :rows)::float8 * interval '1 second') AS ts,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4
    FROM generate_series(0, :rows - 1) AS i
) AS s;
ANALYZE eda.wpp_fdefect_f_n;

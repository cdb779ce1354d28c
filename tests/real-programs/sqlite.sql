-- run.sh's sqlite3 workload: bulk insert via a recursive CTE, indexes,
-- aggregates, a join, updates/deletes, VACUUM and an integrity check.
-- All data comes from an LCG, so the output is fully deterministic.
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-20000;
CREATE TABLE items(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, payload BLOB);
CREATE TABLE groups(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE seq(x, r) AS (
  SELECT 1, 12345
  UNION ALL
  SELECT x + 1, (r * 1103515245 + 12345) % 2147483648 FROM seq WHERE x < 200000
)
INSERT INTO items(id, grp, name, val, payload)
  SELECT x, r % 997, printf('n%08d-%s', r % 1000003, substr('abcdefghijklmnopqrstuvwxyz', 1 + r % 26, 1 + x % 11)),
         (r % 100000) / 7.0, zeroblob(r % 300)
  FROM seq;
WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 996)
INSERT INTO groups SELECT x, 'group-' || (x * 37 % 1000) FROM g;
CREATE INDEX items_grp_val ON items(grp, val);
CREATE INDEX items_name ON items(name);
SELECT count(*), sum(grp), round(sum(val), 3), sum(length(payload)), count(DISTINCT name) FROM items;
SELECT grp, count(*), round(avg(val), 4), min(name), max(name) FROM items GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 10;
SELECT g.label, count(*) AS n, round(sum(i.val), 2) FROM items i JOIN groups g ON g.grp = i.grp
  WHERE i.val BETWEEN 1000 AND 5000 GROUP BY g.label ORDER BY n DESC, g.label LIMIT 10;
SELECT name, val FROM items WHERE name LIKE 'n0000%' ORDER BY name, id LIMIT 10;
UPDATE items SET payload = zeroblob(length(payload) * 2), val = val + 1 WHERE id % 5 = 0;
DELETE FROM items WHERE id % 7 = 0;
SELECT count(*), round(sum(val), 3), sum(length(payload)) FROM items;
SELECT grp, group_concat(id, ',') FROM (SELECT grp, id FROM items WHERE grp < 3 ORDER BY id LIMIT 40) GROUP BY grp ORDER BY grp;
SELECT i.grp, count(*) FROM items i
  WHERE EXISTS (SELECT 1 FROM items j WHERE j.grp = i.grp AND j.val > i.val + 14000) AND i.id < 3000
  GROUP BY i.grp ORDER BY 2 DESC, 1 LIMIT 5;
SELECT length(group_concat(name, '')) FROM (SELECT name FROM items ORDER BY val DESC, id LIMIT 50000);
VACUUM;
PRAGMA integrity_check;

WITH scan0 AS MATERIALIZED (
  SELECT
    *
  FROM (
    SELECT
      "lopnr" AS lopnr,
      "indatum" AS d0,
      (
        "indatum" >= CAST('2011-01-01' AS DATE)
        AND "indatum" <= CAST('2024-11-30' AS DATE)
        AND (
          (
            "diagnos" LIKE 'I21%'
            OR "diagnos" LIKE '% I21%'
            OR "diagnos" LIKE 'I22%'
            OR "diagnos" LIKE '% I22%'
          )
        )
      ) AS f0,
      (
        "indatum" >= CAST('2006-01-02' AS DATE)
        AND "indatum" <= CAST('2024-11-29' AS DATE)
        AND (
          (
            "diagnos" LIKE 'I21%'
            OR "diagnos" LIKE '% I21%'
            OR "diagnos" LIKE 'I22%'
            OR "diagnos" LIKE '% I22%'
          )
        )
      ) AS f1,
      (
        "indatum" <= CAST('2024-11-29' AS DATE)
        AND (
          (
            "diagnos" LIKE 'I63%'
            OR "diagnos" LIKE '% I63%'
            OR "diagnos" LIKE 'I64%'
            OR "diagnos" LIKE '% I64%'
          )
        )
      ) AS f2,
      (
        "indatum" >= CAST('2011-01-01' AS DATE)
        AND "indatum" <= CAST('2024-12-30' AS DATE)
        AND (
          (
            "diagnos" LIKE 'I63%'
            OR "diagnos" LIKE '% I63%'
            OR "diagnos" LIKE 'I64%'
            OR "diagnos" LIKE '% I64%'
          )
        )
      ) AS f3
    FROM "npr"
    WHERE
      NOT "indatum" IS NULL AND "indatum" <= CAST('2024-12-30' AS DATE)
  ) AS r
  WHERE
    (
      "f0" OR "f1" OR "f2" OR "f3"
    )
), scan1 AS (
  SELECT
    "lopnr" AS lopnr,
    "dodsdat" AS d0,
    (
      TRUE
    ) AS f0
  FROM "dors"
  WHERE
    NOT "dodsdat" IS NULL
    AND "dodsdat" >= CAST('2011-01-01' AS DATE)
    AND "dodsdat" <= CAST('2024-12-30' AS DATE)
    AND (
      "ulorsak" LIKE 'I63%' OR "ulorsak" LIKE 'I64%'
    )
), ix AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d
  FROM scan0
  WHERE
    scan0."f0"
), idx AS (
  SELECT
    "lopnr",
    MIN("d") AS index_date
  FROM ix
  GROUP BY
    "lopnr"
), base AS (
  SELECT
    p."lopnr" AS lopnr,
    i."index_date",
    CASE WHEN MIN(p."kon") = MAX(p."kon") THEN MIN(p."kon") END AS kon,
    CASE WHEN MIN(p."lan") = MAX(p."lan") THEN MIN(p."lan") END AS lan,
    CASE WHEN MIN(p."fodelsear") = MAX(p."fodelsear") THEN MIN(p."fodelsear") END AS fodelsear,
    CASE
      WHEN MIN(p."fodelsemanad") = MAX(p."fodelsemanad")
      THEN MIN(p."fodelsemanad")
    END AS fodelsemanad
  FROM "population" AS p
  JOIN idx AS i
    ON p."lopnr" = i."lopnr"
  LEFT JOIN (
    SELECT DISTINCT
      o."lopnr"
    FROM "optout" AS o
    WHERE
      o."andamal" IN ('forskning', 'alla')
  ) AS oo
    ON oo."lopnr" = p."lopnr"
  WHERE
    oo."lopnr" IS NULL
  GROUP BY
    p."lopnr",
    i."index_date"
), ev0 AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    0 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM base
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f1"
    AND scan0."d0" >= b."_ix_date" + -1825
    AND scan0."d0" <= b."_ix_date" + -1
), agg0 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 0
        AND ev."d" >= base."index_date" + -1825
        AND ev."d" <= base."index_date" + -1
        THEN 1
      END
    ) AS c0
  FROM ev0 AS ev
  JOIN base AS base
    ON ev."lopnr" = base."lopnr"
  GROUP BY
    ev."lopnr"
), s0 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad"
  FROM base AS base
  LEFT JOIN agg0 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    NOT (
      COALESCE(agg."c0", 0) > 0
    )
), ev1 AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    1 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s0
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f2" AND scan0."d0" <= b."_ix_date" + -1
), agg1 AS (
  SELECT
    ev."lopnr",
    COUNT(CASE WHEN ev."atom" = 1 AND ev."d" <= base."index_date" + -1 THEN 1 END) AS c1
  FROM ev1 AS ev
  JOIN s0 AS base
    ON ev."lopnr" = base."lopnr"
  GROUP BY
    ev."lopnr"
), s1 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad"
  FROM s0 AS base
  LEFT JOIN agg1 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    NOT (
      COALESCE(agg."c1", 0) > 0
    )
), ev2 AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    2 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s1
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f3" AND scan0."d0" >= b."_ix_date" AND scan0."d0" <= b."_ix_date" + 30
  UNION ALL
  SELECT
    scan1."lopnr" AS lopnr,
    scan1."d0" AS d,
    3 AS atom
  FROM scan1
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s1
  ) AS b
    ON scan1."lopnr" = b."_ix_lopnr"
  WHERE
    scan1."f0" AND scan1."d0" >= b."_ix_date" AND scan1."d0" <= b."_ix_date" + 30
), agg2 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 2 AND ev."d" >= base."index_date" AND ev."d" <= base."index_date" + 30
        THEN 1
      END
    ) AS c2,
    COUNT(
      CASE
        WHEN ev."atom" = 3 AND ev."d" >= base."index_date" AND ev."d" <= base."index_date" + 30
        THEN 1
      END
    ) AS c3
  FROM ev2 AS ev
  JOIN s1 AS base
    ON ev."lopnr" = base."lopnr"
  GROUP BY
    ev."lopnr"
), s2 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad"
  FROM s1 AS base
  LEFT JOIN agg2 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    (
      (
        COALESCE(agg."c2", 0) > 0
      ) OR (
        COALESCE(agg."c3", 0) > 0
      )
    )
), persons AS (
  SELECT
    CAST(EXTRACT(YEAR FROM base."index_date") AS INT) AS year
  FROM s2 AS base
)
SELECT
  "year",
  "grp",
  "n0",
  "n1",
  "n2",
  "n3"
FROM (
  SELECT
    "year",
    GROUPING("year") AS grp,
    CAST(NULL AS BIGINT) AS n0,
    CAST(NULL AS BIGINT) AS n1,
    CAST(NULL AS BIGINT) AS n2,
    COUNT(*) AS n3
  FROM persons
  GROUP BY
    GROUPING SETS (
      ("year")
    )
  UNION ALL
  SELECT
    NULL AS year,
    1 AS grp,
    (
      SELECT
        COUNT(*)
      FROM base
    ) AS n0,
    (
      SELECT
        COUNT(*)
      FROM s0
    ) AS n1,
    (
      SELECT
        COUNT(*)
      FROM s1
    ) AS n2,
    (
      SELECT
        COUNT(*)
      FROM s2
    ) AS n3
) AS r

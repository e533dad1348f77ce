WITH scan0 AS MATERIALIZED (
  SELECT
    *
  FROM (
    SELECT
      "lopnr" AS lopnr,
      "indatum" AS d0,
      "sjukhus" AS site,
      "mvo" AS clinic,
      (
        "indatum" >= CAST('2022-01-01' AS DATE)
        AND "indatum" <= CAST('2025-09-30' AS DATE)
        AND (
          (
            (
              "vardform" = 'S'
            ) AND (
              "hdia" IN ('I50', 'I500', 'I501', 'I509')
            )
          )
        )
      ) AS f0,
      (
        (
          (
            "diagnos" LIKE 'E10%' OR "diagnos" LIKE '% E10%'
          )
        )
      ) AS f1
    FROM "npr"
    WHERE
      NOT "indatum" IS NULL
  ) AS r
  WHERE
    (
      "f0" OR "f1"
    )
), ix AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    scan0."site" AS site,
    scan0."clinic" AS clinic
  FROM scan0
  WHERE
    scan0."f0"
), idx AS (
  SELECT
    "lopnr",
    "d" AS index_date
  FROM (
    SELECT
      "lopnr",
      "d",
      LAG("d") OVER (PARTITION BY "lopnr" ORDER BY "d") AS prev
    FROM (
      SELECT DISTINCT
        "lopnr",
        "d"
      FROM ix
    ) AS days
  ) AS gaps
  WHERE
    "d" >= CAST('2023-01-01' AS DATE) AND (
      "prev" IS NULL OR "prev" < "d" + -365
    )
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
), isite AS (
  SELECT
    ix."lopnr",
    idx."index_date",
    MIN(ix."site") AS site,
    MIN(ix."clinic") AS clinic
  FROM ix
  JOIN idx
    ON ix."lopnr" = idx."lopnr" AND ix."d" = idx."index_date"
  GROUP BY
    ix."lopnr",
    idx."index_date"
), s0 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad"
  FROM base AS base
  WHERE
    COALESCE(
      (
        (
          12 * CAST(EXTRACT(YEAR FROM base."index_date") AS INT) + CAST(EXTRACT(MONTH FROM base."index_date") AS INT)
        ) - (
          12 * CAST(base."fodelsear" AS BIGINT) + CAST(base."fodelsemanad" AS BIGINT)
        )
      ) BETWEEN 600 AND 1031,
      FALSE
    )
), ev1 AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    b."_ix_date" AS _episode,
    0 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s0
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f1"
), agg1 AS (
  SELECT
    ev."lopnr",
    ev."_episode",
    COUNT(CASE WHEN ev."atom" = 0 THEN 1 END) AS c0
  FROM ev1 AS ev
  JOIN s0 AS base
    ON ev."lopnr" = base."lopnr" AND ev."_episode" = base."index_date"
  GROUP BY
    ev."lopnr",
    ev."_episode"
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
    ON agg."lopnr" = base."lopnr" AND agg."_episode" = base."index_date"
  WHERE
    NOT (
      COALESCE(agg."c0", 0) > 0
    )
), persons AS (
  SELECT
    isite."site" AS hospital,
    CAST(EXTRACT(YEAR FROM base."index_date") AS INT) * 100 + CAST(EXTRACT(MONTH FROM base."index_date") AS INT) AS month
  FROM s1 AS base
  LEFT JOIN isite
    ON isite."lopnr" = base."lopnr" AND isite."index_date" = base."index_date"
)
SELECT
  "hospital",
  "month",
  "grp",
  "n0",
  "n1",
  "n2"
FROM (
  SELECT
    "hospital",
    "month",
    GROUPING("hospital", "month") AS grp,
    CAST(NULL AS BIGINT) AS n0,
    CAST(NULL AS BIGINT) AS n1,
    COUNT(*) AS n2
  FROM persons
  GROUP BY
    GROUPING SETS (
      ("hospital"),
      ("month")
    )
  UNION ALL
  SELECT
    NULL AS hospital,
    NULL AS month,
    3 AS grp,
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
    ) AS n2
) AS r

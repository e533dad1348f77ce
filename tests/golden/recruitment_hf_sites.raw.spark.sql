WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      `sjukhus` AS site,
      `mvo` AS clinic,
      (
        `indatum` >= CAST('2022-01-01' AS DATE)
        AND `indatum` <= CAST('2025-09-30' AS DATE)
        AND (
          (
            (
              `vardform` = 'S'
            ) AND (
              `hdia` IN ('I50', 'I500', 'I501', 'I509')
            )
          )
        )
      ) AS f0,
      (
        (
          (
            STARTSWITH(`diagnos`, 'E10') OR `diagnos` LIKE '% E10%'
          )
        )
      ) AS f1
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL
  ) AS r
  WHERE
    (
      `f0` OR `f1`
    )
), ix AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    scan0.`site` AS site,
    scan0.`clinic` AS clinic
  FROM scan0
  WHERE
    scan0.`f0`
), idx AS (
  SELECT
    `lopnr`,
    `d` AS index_date
  FROM (
    SELECT
      `lopnr`,
      `d`,
      LAG(`d`) OVER (PARTITION BY `lopnr` ORDER BY `d` NULLS LAST) AS prev
    FROM (
      SELECT DISTINCT
        `lopnr`,
        `d`
      FROM ix
    ) AS days
  ) AS gaps
  WHERE
    `d` >= CAST('2023-01-01' AS DATE)
    AND (
      `prev` IS NULL OR `prev` < DATE_ADD(`d`, -365)
    )
), base AS (
  SELECT
    p.`lopnr` AS lopnr,
    i.`index_date`,
    CASE WHEN MIN(p.`kon`) = MAX(p.`kon`) THEN MIN(p.`kon`) END AS kon,
    CASE WHEN MIN(p.`lan`) = MAX(p.`lan`) THEN MIN(p.`lan`) END AS lan,
    CASE WHEN MIN(p.`fodelsear`) = MAX(p.`fodelsear`) THEN MIN(p.`fodelsear`) END AS fodelsear,
    CASE
      WHEN MIN(p.`fodelsemanad`) = MAX(p.`fodelsemanad`)
      THEN MIN(p.`fodelsemanad`)
    END AS fodelsemanad
  FROM `population` AS p
  JOIN idx AS i
    ON p.`lopnr` = i.`lopnr`
  LEFT JOIN (
    SELECT DISTINCT
      o.`lopnr`
    FROM `optout` AS o
    WHERE
      o.`andamal` IN ('forskning', 'alla')
  ) AS oo
    ON oo.`lopnr` = p.`lopnr`
  WHERE
    oo.`lopnr` IS NULL
  GROUP BY
    p.`lopnr`,
    i.`index_date`
), isite AS (
  SELECT
    ix.`lopnr`,
    idx.`index_date`,
    MIN(ix.`site`) AS site,
    MIN(ix.`clinic`) AS clinic
  FROM ix
  JOIN idx
    ON ix.`lopnr` = idx.`lopnr` AND ix.`d` = idx.`index_date`
  GROUP BY
    ix.`lopnr`,
    idx.`index_date`
), ev AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    b.`_ix_date` AS _episode,
    0 AS atom
  FROM scan0
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan0.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan0.`f1`
), agg AS (
  SELECT
    ev.`lopnr`,
    ev.`_episode`,
    COUNT(CASE WHEN ev.`atom` = 0 THEN 1 END) AS c0
  FROM ev AS ev
  JOIN base AS base
    ON ev.`lopnr` = base.`lopnr` AND ev.`_episode` = base.`index_date`
  GROUP BY
    ev.`lopnr`,
    ev.`_episode`
), persons AS (
  SELECT
    CASE
      WHEN NOT (
        COALESCE(
          (
            (
              12 * YEAR(base.`index_date`) + MONTH(base.`index_date`)
            ) - (
              12 * CAST(base.`fodelsear` AS BIGINT) + CAST(base.`fodelsemanad` AS BIGINT)
            )
          ) BETWEEN 600 AND 1031,
          FALSE
        )
      )
      THEN 0
      WHEN NOT (
        NOT (
          COALESCE(agg.`c0`, 0) > 0
        )
      )
      THEN 1
      ELSE 2
    END AS reached,
    isite.`site` AS hospital,
    YEAR(base.`index_date`) * 100 + MONTH(base.`index_date`) AS month
  FROM base AS base
  LEFT JOIN isite
    ON isite.`lopnr` = base.`lopnr` AND isite.`index_date` = base.`index_date`
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr` AND agg.`_episode` = base.`index_date`
)
SELECT
  `hospital`,
  `month`,
  GROUPING_ID(`hospital`, `month`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`hospital`),
    (`month`)
  )

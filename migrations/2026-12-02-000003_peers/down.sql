DROP TABLE peer_churn_minute;
DROP TABLE peer_links;

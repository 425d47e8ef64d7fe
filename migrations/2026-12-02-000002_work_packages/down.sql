DROP TABLE guarantee_receiver_counts_hourly;
DROP TABLE guarantee_counts_hourly;
DROP TABLE work_package_funnel_minute;
DROP TABLE work_packages;
DROP TABLE guarantee_receipts;
DROP TABLE work_package_sightings;

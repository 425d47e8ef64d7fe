DROP TABLE authoring_failures;
DROP TABLE slot_blocks;
DROP TABLE block_sightings;

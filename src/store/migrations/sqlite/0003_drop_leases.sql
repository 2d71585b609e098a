-- A binding's lock now dies with its holder (an flock beside the database, see lock.rs):
-- the lease table, whose rows outlived a killed holder until they expired, goes.
DROP TABLE IF EXISTS leases;

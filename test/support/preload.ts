// testcontainers' reaper container does not work under Bun; containers are stopped in afterAll.
process.env.TESTCONTAINERS_RYUK_DISABLED = 'true'

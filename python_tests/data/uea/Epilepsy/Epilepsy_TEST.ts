# Tiny hand-made fixture in the UEA Epilepsy format (test split).
@problemName Epilepsy
@timeStamps false
@missing false
@univariate false
@dimensions 3
@equalLength true
@seriesLength 4
@classLabel true epilepsy walking running sawing
@data
3.5,3.5,3.5,3.5:3.0,3.0,3.0,3.0:25.0,25.0,25.0,25.0:running
100.0,0.0,0.0,0.0:0.0,0.0,0.0,0.0:0.0,0.0,0.0,0.0:sawing
